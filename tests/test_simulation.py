"""syft_flwr.run on the tiny numpy app: threads over the real transport."""

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import syft_flwr
from syft_flwr.simulation import _DATA_HINT, SimulationError, _with_hint
from tests.support import AGGREGATOR, DATASITES, copy_app


def _direct(data: list[Path]) -> dict:
    values = np.concatenate([np.loadtxt(d / "values.txt", ndmin=1) for d in data])
    return {"mean": values.mean(), "variance": values.var(), "count": len(values)}


@pytest.fixture
def project(tiny_app: Path) -> Path:
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    return tiny_app


def test_simulation_agrees_with_direct_computation(project: Path, tiny_data) -> None:
    result = syft_flwr.run(project, tiny_data, run_config={"num-server-rounds": 2})

    got = json.loads((project / "result.json").read_text())
    want = _direct(tiny_data)
    assert got["count"] == want["count"]
    assert got["mean"] == pytest.approx(want["mean"], rel=1e-12)
    assert got["variance"] == pytest.approx(want["variance"], rel=1e-12)
    assert result.rounds == 2
    assert result.participants == {1: sorted(DATASITES), 2: sorted(DATASITES)}
    for email in [*DATASITES, AGGREGATOR]:
        assert (result.log_dir / f"{email}.log").exists()
    assert "do1@openmined.org" in (result.log_dir / "do1@openmined.org.log").read_text()


def test_failing_datasite_raises_with_its_name(project: Path, tiny_data) -> None:
    (tiny_data[1] / "FAIL").touch()
    with pytest.raises(SimulationError) as info:
        syft_flwr.run(project, tiny_data)
    assert set(info.value.failures) >= {"do2@openmined.org"}
    assert "do1@openmined.org" not in info.value.failures
    assert "told to fail" in str(info.value)


def test_missing_data_loading_gets_a_hint(project: Path, tiny_data) -> None:
    client = project / "tiny_app" / "client_app.py"
    client.write_text(
        client.read_text()
        .replace('get_syftbox_dataset_path() / "values.txt"', 'Path("data/values.txt")')
        .replace("import numpy as np", "from pathlib import Path\n\nimport numpy as np")
    )
    with pytest.raises(SimulationError, match="get_syftbox_dataset_path"):
        syft_flwr.run(project, tiny_data)


def test_bad_inputs_are_refused(tiny_app: Path, project: Path, tiny_data, tmp_path) -> None:
    with pytest.raises(ValueError, match="1 mock path"):
        syft_flwr.run(project, tiny_data[:1])
    with pytest.raises(FileNotFoundError, match="do2@openmined.org"):
        syft_flwr.run(project, [tiny_data[0], tmp_path / "nope"])
    plain = copy_app(tiny_app, tmp_path / "plain")
    (plain / "pyproject.toml").write_text(
        (plain / "pyproject.toml").read_text().split("[tool.syft_flwr]")[0]
    )
    with pytest.raises(ValueError, match="not bootstrapped"):
        syft_flwr.run(plain, tiny_data)


def _client_reading(project: Path, data_expression: str) -> None:
    """Make the tiny ClientApp read its data from ``data_expression`` instead of the toolkit."""
    client = project / "tiny_app" / "client_app.py"
    client.write_text(
        client.read_text()
        .replace('get_syftbox_dataset_path() / "values.txt"', f'{data_expression} / "values.txt"')
        .replace('(get_syftbox_dataset_path() / "FAIL").exists()', "False")
        .replace("import numpy as np", "import os\nfrom pathlib import Path\n\nimport numpy as np")
    )


@pytest.mark.parametrize(
    "data_expression",
    ['Path(os.environ["DATA_DIR"])', 'Path(os.getenv("DATA_DIR"))'],
    ids=["os.environ", "os.getenv"],
)
def test_data_from_an_environment_variable_gets_the_hint(
    project: Path, tiny_data, monkeypatch: pytest.MonkeyPatch, data_expression: str
) -> None:
    monkeypatch.delenv("DATA_DIR", raising=False)
    _client_reading(project, data_expression)
    with pytest.raises(SimulationError) as info:
        syft_flwr.run(project, tiny_data)
    for email in DATASITES:
        assert "get_syftbox_dataset_path" in info.value.failures[email]
    assert "DATA_DIR" in str(info.value)


def test_the_hint_is_only_for_data_loading() -> None:
    for why in (
        "raised FileNotFoundError in round 1: [Errno 2] No such file: 'data/values.txt'",
        "raised DatasetPathError in round 1: no dataset path",
        "raised KeyError in round 1: 'DATA_DIR'",
        "crashed: KeyError: 'MY_DATASET_PATH'",
        "raised TypeError: expected str, bytes or os.PathLike object, not NoneType",
    ):
        assert _with_hint(why).endswith(_DATA_HINT), why
    for why in (
        "raised KeyError in round 1: 'stats'",
        "raised KeyError in round 1: 'BMI'",
        "raised ValueError in round 1: told to fail",
    ):
        assert _with_hint(why) == why


def test_twice_in_a_row_and_two_projects_side_by_side(project: Path, tiny_data, tmp_path) -> None:
    first = syft_flwr.run(project, tiny_data)
    second = syft_flwr.run(project, tiny_data)
    assert first.rounds == second.rounds == 1

    other = copy_app(project, tmp_path / "other")
    other_parties = ["ds2@openmined.org", "do3@openmined.org", "do4@openmined.org"]
    syft_flwr.bootstrap(
        other, aggregator=other_parties[0], datasites=other_parties[1:], overwrite=True
    )
    other_data = []
    for i, values in enumerate([[5.0], [7.0, 9.0]]):
        folder = tmp_path / f"other{i}"
        folder.mkdir()
        (folder / "values.txt").write_text("\n".join(map(str, values)))
        other_data.append(folder)
    parties = {project: [AGGREGATOR, *DATASITES], other: other_parties}
    for proj in parties:  # whatever is read below was written by the concurrent runs
        shutil.rmtree(proj / "simulation_logs", ignore_errors=True)
        (proj / "result.json").unlink(missing_ok=True)

    errors: list[BaseException] = []
    results: dict[Path, syft_flwr.SimulationResult] = {}

    def go(proj: Path, data: list[Path]) -> None:
        try:
            results[proj] = syft_flwr.run(proj, data)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=go, args=a) for a in ((project, tiny_data), (other, other_data))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a simulation did not finish within 120 s"
    assert not errors
    assert results[project].participants == {1: sorted(DATASITES)}
    assert results[other].participants == {1: other_parties[1:]}
    assert json.loads((project / "result.json").read_text())["count"] == 5
    assert json.loads((other / "result.json").read_text())["count"] == 3
    assert json.loads((other / "result.json").read_text())["mean"] == pytest.approx(7.0)
    for proj, own in parties.items():
        logs = {p.name: p.read_text() for p in (proj / "simulation_logs").glob("*.log")}
        assert sorted(logs) == sorted(f"{email}.log" for email in own)
        strangers = [e for e in (AGGREGATOR, *DATASITES, *other_parties) if e not in own]
        for name, text in logs.items():
            assert name.removesuffix(".log") in text
            assert not [e for e in strangers if e in text], (
                f"{proj.name}/{name} mentions {strangers}"
            )
