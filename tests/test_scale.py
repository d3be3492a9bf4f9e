"""syft_flwr.run at scale: 200 datasites x 2 rounds of the sum app, exact, everyone answering.

Behaviour only (wall time is benchmarks/scale.py's business).
"""

from pathlib import Path

import pytest

import syft_flwr
from syft_flwr.simulation import SimulationError
from tests.fixtures.sum_app.federation import make_federation

DATASITES, ROUNDS = 200, 2


@pytest.mark.xdist_group("scale")
@pytest.mark.timeout(900)
def test_200_datasites_sum_exactly_every_round(tmp_path: Path, capsys) -> None:
    fed = make_federation(tmp_path, DATASITES)

    result = syft_flwr.run(fed.project, fed.mock_paths, run_config=fed.run_config(ROUNDS))

    assert result.rounds == ROUNDS
    assert result.participants == {r: sorted(fed.datasites) for r in range(1, ROUNDS + 1)}
    totals = [line for line in capsys.readouterr().out.splitlines() if "sum_app: round=" in line]
    assert len(totals) == ROUNDS
    for line in totals:  # the ServerApp raises on a wrong total; this checks it ran the rounds
        assert f"nodes={DATASITES} total={fed.expected_total} " in line


def test_a_wrong_total_fails_the_run(tmp_path: Path) -> None:
    fed = make_federation(tmp_path, 3)
    config = {**fed.run_config(1), "expected-total": fed.expected_total + 1}

    with pytest.raises(SimulationError, match=f"total {fed.expected_total}, expected"):
        syft_flwr.run(fed.project, fed.mock_paths, run_config=config)
