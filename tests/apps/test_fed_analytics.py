"""fed-analytics-diabetes: the ServerApp's aggregate equals pandas on the union of the data.

The app is loaded from a fresh copy (its figures/ land there) and driven with real Flower
objects. Messages reach the ClientApp through the package's ``LoopbackGrid``: a
``flwr.serverapp.Grid`` that calls the ClientApp in this process, once per datasite, as a
datasite's node does (its data path, an error reply for an app that raised), every message
through flwr's protobuf serde. The real transport is exercised by the end-to-end runs
through ``syft_flwr.run``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flwr.app import Context, Message, MessageType, RecordDict

from syft_flwr.apps import FlowerApps, load_apps
from syft_flwr.config import flower_run_config
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.loopback import LoopbackGrid
from syft_flwr.utils import DatasetPathError
from tests.support import AGGREGATOR, DATASITES, PIMA_FEATURES, REPO, copy_app

APP = REPO / "fed-analytics-diabetes"
MOCKS = [REPO / "datasets" / "pima-indians-diabetes-database" / f"do{i}" / "mock" for i in (1, 2)]
FEATURES = PIMA_FEATURES
DEFAULT_EDGES = {
    "Glucose": [float(e) for e in range(0, 201, 10)],
    "BMI": [float(e) for e in range(0, 71, 5)],
    "Age": [float(e) for e in range(20, 86, 5)],
}
RUN_ID = 4242


# -- helpers --------------------------------------------------------------------------------
@pytest.fixture
def app_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DATA_DIR", raising=False)
    return copy_app(APP, tmp_path / "fed-analytics-diabetes")


@pytest.fixture
def flwr_warnings() -> Iterator[list[str]]:
    """Warnings logged on flwr's logger (the apps log through it)."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record.getMessage())

    handler = Keep()
    logging.getLogger("flwr").addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger("flwr").removeHandler(handler)


def _run_server(
    project: Path, datasites: dict[int, Path | None], **overrides: Any
) -> tuple[LoopbackGrid, FlowerApps]:
    apps = load_apps(project)
    run_config = {**flower_run_config(project), **overrides}
    grid = LoopbackGrid(apps.client_app, datasites, run_config=run_config, run_id=RUN_ID)
    context = Context(
        run_id=RUN_ID, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )
    apps.server_app(grid, context)
    return grid, apps


def _union(folders: list[Path]) -> pd.DataFrame:
    return pd.concat(
        [pd.read_csv(folder / name) for folder in folders for name in ("train.csv", "test.csv")],
        ignore_index=True,
    )


def _assert_matches_pandas(
    summary: dict[str, Any], frame: pd.DataFrame, edges: dict[str, list[float]]
) -> None:
    assert summary["label"] == "y"
    for o in (0, 1):
        part = frame[frame["y"] == o]
        assert summary["rows"][str(o)] == len(part)
        for feature in FEATURES:
            column = part[feature]
            totals = summary["features"][feature]["totals"][str(o)]
            assert totals["count"] == int(column.count())
            assert totals["zeros"] == int((column == 0).sum())
            assert totals["sum"] == pytest.approx(float(column.sum()), rel=1e-12, abs=1e-9)
            assert totals["mean"] == pytest.approx(float(column.mean()), rel=1e-12)
        for feature, feature_edges in edges.items():
            entry = summary["features"][feature]
            assert entry["bin_edges"] == feature_edges
            values = part[feature].dropna().to_numpy(dtype=float)
            expected, _ = np.histogram(values, bins=feature_edges)
            assert entry["counts"][str(o)] == expected.tolist()
            assert entry["below"][str(o)] == int((values < feature_edges[0]).sum())
            assert entry["above"][str(o)] == int((values > feature_edges[-1]).sum())
            assert sum(entry["counts"][str(o)]) + entry["below"][str(o)] + entry["above"][
                str(o)
            ] == len(values)
    for feature in set(FEATURES) - set(edges):
        assert "counts" not in summary["features"][feature]


def _assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= 600 and height >= 300
    assert float(image[..., :3].std()) > 0.05  # something is drawn


# -- tests ----------------------------------------------------------------------------------
def test_summary_equals_pandas_on_the_union_of_both_datasites(app_copy: Path) -> None:
    grid, _ = _run_server(app_copy, {101: MOCKS[0], 202: MOCKS[1]})

    assert grid.received == {101: 1, 202: 1}
    assert grid.raised == {}
    summary = json.loads((app_copy / "figures" / "summary.json").read_text())
    assert summary["datasites"] == 2
    assert summary["rounds"] == 1
    assert summary["failed"] == {}
    assert summary["answered"] == ["node 101", "node 202"]
    union = _union(MOCKS)
    assert sum(summary["rows"].values()) == len(union) == 200
    _assert_matches_pandas(summary, union, DEFAULT_EDGES)
    for feature in DEFAULT_EDGES:  # the default edges leave nothing outside
        assert summary["features"][feature]["below"] == {"0": 0, "1": 0}
        assert summary["features"][feature]["above"] == {"0": 0, "1": 0}
        _assert_png(app_copy / "figures" / f"{feature}_histogram.png")
    assert sorted(p.name for p in (app_copy / "figures").iterdir()) == [
        "Age_histogram.png",
        "BMI_histogram.png",
        "Glucose_histogram.png",
        "summary.json",
    ]


def test_rounds_and_bins_come_from_the_run_config(app_copy: Path) -> None:
    edges = {
        "Glucose": [0.0, 100.0, 140.0, 200.0],
        "BMI": [18.5, 25.0, 30.0, 35.0, 40.0],
        "Age": [30.0, 40.0, 50.0, 60.0],
    }
    grid, _ = _run_server(
        app_copy,
        {7: MOCKS[0], 8: MOCKS[1]},
        **{
            "num-server-rounds": 3,
            "glucose-bins": "0,100,140,200",
            "bmi-bins": "18.5,25,30,35,40",
            "age-bins": "30:60:10",
        },
    )
    assert grid.received == {7: 3, 8: 3}
    summary = json.loads((app_copy / "figures" / "summary.json").read_text())
    assert summary["rounds"] == 3
    assert [r["round"] for r in summary["history"]] == [1, 2, 3]
    _assert_matches_pandas(summary, _union(MOCKS), edges)
    age = summary["features"]["Age"]
    assert sum(age["below"].values()) > 0 and sum(age["above"].values()) > 0  # not dropped


def test_a_datasite_without_data_raises_the_toolkits_dataset_path_error(app_copy: Path) -> None:
    apps = load_apps(app_copy)
    flwr_compat.ensure_task_identity(RUN_ID)
    query = Message(RecordDict(), dst_node_id=5, message_type=MessageType.QUERY)
    flwr_compat.set_message_id(query, uuid.uuid4().hex)
    context = Context(run_id=RUN_ID, node_id=5, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(DatasetPathError, match="get_syftbox_dataset_path"):
        apps.client_app(query, context)  # no data path: not swallowed by the app


def _summary(project: Path) -> dict[str, Any]:
    return json.loads((project / "figures" / "summary.json").read_text())


def _pngs(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "figures").glob("*.png"))


class TamperingGrid(LoopbackGrid):
    """TEST FIXTURE: replaces node ``bad``'s reply with an empty one, or drops it."""

    def __init__(self, *args: Any, bad: int, drop: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bad, self.drop_reply = bad, drop

    def serve(self, message: Message) -> Message:
        reply = super().serve(message)
        if message.metadata.dst_node_id == self.bad:
            reply = Message(RecordDict(), reply_to=message)
        return reply

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = super().pull_messages(message_ids)
        if self.drop_reply:
            return [r for r in replies if r.metadata.src_node_id != self.bad]
        return replies


def test_a_failed_datasite_fails_the_run_but_summary_json_records_it(
    app_copy: Path, flwr_warnings: list[str]
) -> None:
    """An error reply: the aggregate would leave out node 3, so the ServerApp writes
    summary.json (incomplete, with the failure) and raises naming node 3 and why."""
    _run_server(app_copy, {1: MOCKS[0], 2: MOCKS[1]})  # an earlier, complete run's figures
    assert len(_pngs(app_copy)) == 3
    with pytest.raises(RuntimeError, match="leaves out 1 of 3 datasite") as info:
        _run_server(app_copy, {1: MOCKS[0], 2: MOCKS[1], 3: None})
    assert "node 3: error reply" in str(info.value) and "DatasetPathError" in str(info.value)
    assert "allow-partial" in str(info.value)
    assert "node 1" not in str(info.value) and "node 2" not in str(info.value)
    summary = _summary(app_copy)
    assert summary["complete"] is False
    assert summary["datasites"] == 2 and summary["answered"] == ["node 1", "node 2"]
    assert (
        list(summary["failed"]) == ["node 3"] and "DatasetPathError" in summary["failed"]["node 3"]
    )
    assert _pngs(app_copy) == []  # no figure of a partial aggregate, none left from before
    assert any("node 3" in w and "DatasetPathError" in w for w in flwr_warnings)


@pytest.mark.parametrize("drop", [False, True], ids=["malformed reply", "missing reply"])
def test_a_malformed_or_missing_reply_fails_the_run(app_copy: Path, drop: bool) -> None:
    apps = load_apps(app_copy)
    run_config = flower_run_config(app_copy)
    grid = TamperingGrid(
        apps.client_app, {1: MOCKS[0], 2: MOCKS[1]}, run_config=run_config, bad=2, drop=drop
    )
    context = Context(
        run_id=RUN_ID, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )
    why = "no reply" if drop else "malformed reply: the reply has no"
    with pytest.raises(RuntimeError, match=f"node 2: {why}"):
        apps.server_app(grid, context)
    summary = _summary(app_copy)
    assert summary["complete"] is False and summary["answered"] == ["node 1"]
    assert summary["failed"]["node 2"].startswith(why)


def test_allow_partial_accepts_an_aggregate_without_the_failed_datasite(
    app_copy: Path, flwr_warnings: list[str]
) -> None:
    assert "allow-partial = false" in (app_copy / "pyproject.toml").read_text()  # the default
    grid, _ = _run_server(app_copy, {1: MOCKS[0], 2: MOCKS[1], 3: None}, **{"allow-partial": True})
    assert isinstance(grid.raised[3], DatasetPathError)
    summary = _summary(app_copy)
    assert summary["complete"] is False and summary["datasites"] == 2
    assert list(summary["failed"]) == ["node 3"]
    _assert_matches_pandas(summary, _union(MOCKS), DEFAULT_EDGES)
    assert len(_pngs(app_copy)) == 3
    assert any("allow-partial" in w and "node 3" in w for w in flwr_warnings)
    with pytest.raises(ValueError, match="allow-partial must be true or false"):
        _run_server(app_copy, {1: MOCKS[0]}, **{"allow-partial": "maybe"})


def test_syft_flwr_run_summary_equals_pandas_on_the_mock_data(app_copy: Path) -> None:
    """End to end: syft_flwr.run, threads over the real transport, do1 + do2 mock data."""
    import syft_flwr

    syft_flwr.bootstrap(app_copy, aggregator=AGGREGATOR, datasites=DATASITES)
    result = syft_flwr.run(app_copy, MOCKS)

    assert result.rounds == 1 and result.participants == {1: DATASITES}
    summary = _summary(app_copy)
    assert summary["complete"] is True and summary["failed"] == {}
    assert summary["answered"] == DATASITES and summary["datasites"] == 2
    union = _union(MOCKS)
    assert sum(summary["rows"].values()) == len(union) == 200
    _assert_matches_pandas(summary, union, DEFAULT_EDGES)
    assert {p.name for p in result.outputs} >= {"summary.json", *_pngs(app_copy)}
    assert len(_pngs(app_copy)) == 3


def test_bad_data_is_an_error_reply_and_no_valid_reply_raises(
    app_copy: Path, tmp_path: Path, flwr_warnings: list[str]
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_csv(MOCKS[0] / "train.csv").drop(columns=["BMI"]).to_csv(bad / "train.csv", index=False)
    missing = tmp_path / "does-not-exist"
    with pytest.raises(RuntimeError, match="no datasite answered") as info:
        _run_server(app_copy, {1: bad, 2: missing, 3: None})
    assert "BMI" in str(info.value) and "does not exist" in str(info.value)
    assert not (app_copy / "figures" / "summary.json").exists()
    assert len([w for w in flwr_warnings if "failed" in w]) == 3


def test_the_app_is_a_valid_flower_app_and_its_client_app_draws_nothing(app_copy: Path) -> None:
    assert not (APP / "main.py").exists()
    assert "[tool.syft_flwr]" not in (APP / "pyproject.toml").read_text()
    script = f"""
import json, sys
from pathlib import Path
from flwr.cli.config_utils import load_and_validate
project = Path({str(app_copy)!r})
config, warnings = load_and_validate(project / "pyproject.toml", check_module=True)
sys.path.insert(0, str(project))
heavy = ("pandas", "matplotlib")
import fed_analytics_diabetes.client_app
client_heavy = [m for m in heavy if m in sys.modules]
import fed_analytics_diabetes.server_app
from fed_analytics_diabetes import settings
print(json.dumps({{
    "warnings": warnings,
    "client_heavy": client_heavy,
    "server_heavy": [m for m in heavy if m in sys.modules],
    "config": config["tool"]["flwr"]["app"]["config"],
    "defaults": {{settings.config_key(f): v for f, v in settings.DEFAULT_BINS.items()}},
}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=app_copy
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["warnings"] == []
    # a data owner's job loads only the ClientApp: it reads with pandas, matplotlib stays out
    assert result["client_heavy"] == ["pandas"]
    assert result["server_heavy"] == ["pandas", "matplotlib"]  # the ServerApp draws
    for key, default in result["defaults"].items():
        assert result["config"][key] == default  # pyproject and settings agree
    assert result["config"]["num-server-rounds"] == 1


def test_syft_flwr_run_fails_when_a_reply_is_malformed(app_copy: Path, tmp_path: Path) -> None:
    """The transport sees a valid reply; only the ServerApp finds it malformed. The run still
    fails, naming the datasite and why, and summary.json records it."""
    import syft_flwr
    from syft_flwr.simulation import SimulationError

    client = app_copy / "fed_analytics_diabetes" / "client_app.py"
    source = client.read_text()
    sent = "return Message(stats.to_recorddict(), reply_to=msg)"
    assert sent in source
    broken = (
        'RecordDict() if get_syftbox_dataset_path().name == "broken" else stats.to_recorddict()'
    )
    client.write_text(
        source.replace(sent, f"return Message({broken}, reply_to=msg)").replace(
            "from flwr.app import Context, Message",
            "from syft_flwr.utils import get_syftbox_dataset_path\n"
            "from flwr.app import Context, Message, RecordDict",
        )
    )
    broken_mock = copy_app(MOCKS[1], tmp_path / "broken")
    syft_flwr.bootstrap(app_copy, aggregator=AGGREGATOR, datasites=DATASITES)

    with pytest.raises(SimulationError) as info:
        syft_flwr.run(app_copy, [MOCKS[0], broken_mock])
    assert list(info.value.failures) == [AGGREGATOR]
    why = info.value.failures[AGGREGATOR]
    assert f"{DATASITES[1]}: malformed reply" in why and DATASITES[0] + ":" not in why
    summary = _summary(app_copy)
    assert summary["complete"] is False and summary["answered"] == [DATASITES[0]]
    assert summary["failed"][DATASITES[1]].startswith("malformed reply")
