"""A data owner's own training settings reach its datasite through the real job path:
``run_private(env={"SYFT_FLWR_NODE_CONFIG": ...})`` -> ``main.py`` -> node config ->
the ClientApp. Real processes: both jobs and the aggregator."""

from __future__ import annotations

import json

from tests.faults.helpers import FL_APP, federation, pima_data
from tests.support import DATASITES

DO1, DO2 = DATASITES


def test_a_data_owners_node_config_sets_its_own_local_training(tmp_path) -> None:
    config = {"num-server-rounds": 1, "local-epochs": 1, "batch-size": 32}
    with federation(tmp_path, FL_APP, [pima_data(1), pima_data(2)], config=config) as fed:
        fed.owners[DO1].start(env={"SYFT_FLWR_NODE_CONFIG": "local-epochs=3 batch-size=16"})
        fed.owners[DO2].start()
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)

        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        do1_log = fed.owners[DO1].run.stderr_path.read_text()
        do2_log = fed.owners[DO2].run.stderr_path.read_text()
        assert "round 1: trained 3 epoch(s)" in do1_log and "batch=16" in do1_log, do1_log
        assert "(node config sets local-epochs, batch-size)" in do1_log
        assert "round 1: trained 1 epoch(s)" in do2_log and "batch=32" in do2_log, do2_log
        assert "node config sets" not in do2_log
        metrics = json.loads((fed.weights / "metrics.json").read_text())
        assert metrics[-1]["participants"] == sorted(DATASITES)
