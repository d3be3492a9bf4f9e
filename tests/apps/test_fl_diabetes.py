"""The fl-diabetes-prediction Flower app: federated preprocessing, training, resume, quality.

Each test runs the app's real ServerApp and ClientApp from a fresh copy of the project (so
weights/ belongs to the test) over :class:`LoopbackGrid`, two datasites in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flwr.app import Context, MessageType, RecordDict

from syft_flwr.apps import load_apps
from syft_flwr.runtime import run_config_for
from syft_flwr.transport.loopback import LoopbackGrid
from tests.apps.fl_helpers import (
    copy_project,
    data_dirs,
    load_script,
    make_split_dirs,
    real_split_dirs,
)
from tests.support import AGGREGATOR, DATASITES, PIMA_FEATURES, REPO

APP = REPO / "fl-diabetes-prediction"
NODES = (101, 202)  # the two datasites' node ids
ZERO_MEANS_MISSING = ["Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"]
FEATURES = PIMA_FEATURES


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(APP, tmp_path / "fl-diabetes-prediction")


@pytest.fixture
def datasets(tmp_path: Path) -> list[Path]:
    return data_dirs(tmp_path / "data")


def run_app(
    project: Path,
    dirs: list[Path],
    overrides: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    node_configs: dict[int, dict[str, Any]] | None = None,
    fail=None,
) -> LoopbackGrid:
    """Run the app's ServerApp over two in-process datasites; returns the grid (its log)."""
    apps = load_apps(project)
    run_config = run_config_for(project, overrides, resume)
    grid = LoopbackGrid(
        apps.client_app,
        dict(zip(NODES, dirs, strict=True)),
        run_config=run_config_for(project, None, False),  # what a datasite's job has
        node_configs=node_configs,
        drop=fail,
    )
    context = Context(
        run_id=grid.run.run_id, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )
    apps.server_app(grid, context)
    return grid


def metrics_of(project: Path) -> list[dict[str, Any]]:
    return json.loads((project / "weights" / "metrics.json").read_text())


def weights_of(project: Path, server_round: int) -> dict[str, np.ndarray]:
    with np.load(project / "weights" / f"round-{server_round}.npz") as data:
        return {key: data[key] for key in data.files}


def pooled_frame(dirs: list[Path], split: str) -> pd.DataFrame:
    return pd.concat([pd.read_csv(d / f"{split}.csv") for d in dirs], ignore_index=True)


def train_replies(grid: LoopbackGrid) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for reply in grid.replies:
        if reply.metadata.message_type == MessageType.TRAIN and not reply.has_error():
            out.setdefault(reply.metadata.src_node_id, []).append(dict(reply.content["metrics"]))
    return out


# -- training ----------------------------------------------------------------------------------
def test_training_improves_on_the_initial_model(project: Path, datasets: list[Path]) -> None:
    stale = project / "weights" / "round-99.npz"
    stale.parent.mkdir()
    stale.write_bytes(b"from an earlier run")

    run_app(project, datasets, {"num-server-rounds": 5})

    metrics = metrics_of(project)
    assert [m["round"] for m in metrics] == [0, 1, 2, 3, 4, 5]
    first, last = metrics[0], metrics[-1]
    assert last["loss"] < first["loss"]
    assert last["accuracy"] > first["accuracy"]
    assert last["auc"] > first["auc"]
    assert last["accuracy"] > 0.7 and last["auc"] > 0.78
    assert last["num-examples"] == len(pooled_frame(datasets, "test"))
    assert last["participants"] == [str(n) for n in NODES] and last["failures"] == {}
    assert not stale.exists(), "a fresh run replaces the previous weights/"
    for server_round in range(6):
        assert set(weights_of(project, server_round)) == {"coef", "intercept"}
    assert json.loads((project / "weights" / "checkpoint.json").read_text())["round"] == 5


def test_outputs_go_to_the_project_folder_whatever_the_cwd(
    project: Path, datasets: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_app(project, datasets, {"num-server-rounds": 1})
    assert (project / "weights" / "round-1.npz").is_file()
    assert not (elsewhere / "weights").exists()


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox", "fedadam", "fedtrimmedavg", "krum"])
def test_each_strategy_trains(project: Path, datasets: list[Path], strategy: str) -> None:
    grid = run_app(project, datasets, {"num-server-rounds": 3, "strategy": strategy})

    metrics = metrics_of(project)
    assert [m["round"] for m in metrics] == [0, 1, 2, 3]
    assert all(m["strategy"] == strategy for m in metrics)
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"]
    train_configs = [
        m.content["config"] for m in grid.delivered if m.metadata.message_type == MessageType.TRAIN
    ]
    assert len(train_configs) == 3 * len(NODES)
    if strategy == "fedprox":
        assert all(c["proximal-mu"] == 0.1 for c in train_configs)
    if strategy == "fedadam":  # its moments are saved for --resume
        assert (project / "weights" / "strategy" / "round-3.npz").is_file()


def test_an_unknown_strategy_is_refused(project: Path, datasets: list[Path]) -> None:
    with pytest.raises(ValueError, match="fedavg, fedprox, fedadam, fedtrimmedavg, krum"):
        run_app(project, datasets, {"strategy": "fedsgd"})


def test_training_is_deterministic_given_the_seed(
    project: Path, datasets: list[Path], tmp_path: Path
) -> None:
    other = copy_project(APP, tmp_path / "other")
    run_app(project, datasets, {"num-server-rounds": 2, "seed": 3})
    run_app(other, datasets, {"num-server-rounds": 2, "seed": 3})
    third = copy_project(APP, tmp_path / "third")
    run_app(third, datasets, {"num-server-rounds": 2, "seed": 4})
    same, changed = weights_of(other, 2), weights_of(third, 2)
    for key, value in weights_of(project, 2).items():
        assert np.array_equal(value, same[key])
    assert not np.array_equal(weights_of(project, 2)["coef"], changed["coef"])


# -- resume ------------------------------------------------------------------------------------
class SimulatedStop(RuntimeError):
    pass


def stop_at_round(server_round: int):
    def fail(message) -> bool:
        config = message.content.get("config")
        if (
            message.metadata.message_type == MessageType.TRAIN
            and config is not None
            and config.get("server-round") == server_round
        ):
            raise SimulatedStop(f"aggregator stopped before round {server_round}")
        return False

    return fail


@pytest.mark.parametrize("strategy", ["fedavg", "fedadam"])
def test_resume_after_a_stop_reaches_the_uninterrupted_weights(
    project: Path, datasets: list[Path], tmp_path: Path, strategy: str
) -> None:
    config = {"num-server-rounds": 4, "strategy": strategy}
    uninterrupted = copy_project(APP, tmp_path / "uninterrupted")
    run_app(uninterrupted, datasets, config)

    with pytest.raises(SimulatedStop):
        run_app(project, datasets, config, fail=stop_at_round(3))
    assert [m["round"] for m in metrics_of(project)] == [0, 1, 2]
    assert not (project / "weights" / "round-3.npz").exists()

    grid = run_app(project, datasets, config, resume=True)

    delivered = [(m.metadata.message_type, m.content["config"]) for m in grid.delivered]
    assert MessageType.QUERY not in [kind for kind, _ in delivered], "statistics are reused"
    rounds = sorted({c["server-round"] for kind, c in delivered if kind == MessageType.TRAIN})
    assert rounds == [3, 4], "no round is lost or trained twice"
    assert metrics_of(project) == metrics_of(uninterrupted)
    for server_round in range(5):
        expected = weights_of(uninterrupted, server_round)
        for key, value in weights_of(project, server_round).items():
            assert np.array_equal(value, expected[key]), (server_round, key)


def test_resume_extends_a_finished_run_and_drops_an_unfinished_round(
    project: Path, datasets: list[Path], tmp_path: Path
) -> None:
    uninterrupted = copy_project(APP, tmp_path / "uninterrupted")
    run_app(uninterrupted, datasets, {"num-server-rounds": 4})

    run_app(project, datasets, {"num-server-rounds": 2})
    # Leftovers of a round 3 stopped before its checkpoint: weights and metrics, no checkpoint.
    (project / "weights" / "round-3.npz").write_bytes(b"half a round")
    saved = metrics_of(project)
    (project / "weights" / "metrics.json").write_text(json.dumps([*saved, {"round": 3}]))
    run_app(project, datasets, {"num-server-rounds": 4}, resume=True)

    assert [m["round"] for m in metrics_of(project)] == [0, 1, 2, 3, 4]
    for key, value in weights_of(project, 4).items():
        assert np.array_equal(value, weights_of(uninterrupted, 4)[key])


def test_resume_with_another_strategy_is_refused(project: Path, datasets: list[Path]) -> None:
    run_app(project, datasets, {"num-server-rounds": 1})
    with pytest.raises(ValueError, match="same strategy"):
        run_app(project, datasets, {"num-server-rounds": 2, "strategy": "fedadam"}, resume=True)
    assert [m["round"] for m in metrics_of(project)] == [0, 1], "the saved run is kept"


def test_resume_without_saved_rounds_starts_afresh(project: Path, datasets: list[Path]) -> None:
    run_app(project, datasets, {"num-server-rounds": 1}, resume=True)
    assert [m["round"] for m in metrics_of(project)] == [0, 1]


# -- preprocessing -----------------------------------------------------------------------------
def test_federated_statistics_equal_the_pooled_pandas_ones(
    project: Path, datasets: list[Path]
) -> None:
    grid = run_app(project, datasets, {"num-server-rounds": 1})

    pooled = pooled_frame(datasets, "train")[FEATURES].astype(float)
    pooled[ZERO_MEANS_MISSING] = pooled[ZERO_MEANS_MISSING].replace(0.0, np.nan)
    impute = pooled.mean()  # pandas skips NaN: the mean of the measured values
    filled = pooled.fillna(impute)
    stats = json.loads((project / "weights" / "preprocessing.json").read_text())
    np.testing.assert_allclose(stats["impute"], impute.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats["mean"], filled.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], filled.std(ddof=0).to_numpy(), rtol=1e-9)
    assert stats["rows"] == len(pooled)

    # What left each datasite for them: sums and counts only, never rows.
    query_replies = [r for r in grid.replies if r.metadata.message_type == MessageType.QUERY]
    assert len(query_replies) == len(NODES)
    for reply in query_replies:
        (record,) = reply.content.metric_records.values()
        assert set(record) == {"rows", "positives", "present", "sums", "sumsq"}
        assert all(len(record[k]) == len(FEATURES) for k in ("present", "sums", "sumsq"))
    # ... and every datasite preprocesses with the same, federated, statistics.
    sent = [m.content["config"] for m in grid.delivered if m.metadata.message_type != "query"]
    assert all(list(c["prep-impute"]) == stats["impute"] for c in sent)


# -- per-datasite settings ---------------------------------------------------------------------
def test_node_config_overrides_reach_the_client(project: Path, datasets: list[Path]) -> None:
    grid = run_app(
        project,
        datasets,
        {"num-server-rounds": 2, "batch-size": 16},  # the data scientist's run config
        node_configs={NODES[0]: {"local-epochs": 3, "learning-rate": 0.05, "batch-size": 8}},
    )

    replies = train_replies(grid)
    assert len(replies[NODES[0]]) == len(replies[NODES[1]]) == 2
    for used in replies[NODES[0]]:  # the data owner's node config wins
        assert (used["local-epochs"], used["learning-rate"], used["batch-size"]) == (3, 0.05, 8)
    for used in replies[NODES[1]]:  # the run config, as the ServerApp sent it
        assert (used["local-epochs"], used["learning-rate"], used["batch-size"]) == (1, 0.01, 16)


def test_a_bad_node_config_value_is_reported(project: Path, datasets: list[Path]) -> None:
    run_app(
        project,
        datasets,
        {"num-server-rounds": 1},
        node_configs={NODES[1]: {"local-epochs": 0}},
    )
    (entry,) = [m for m in metrics_of(project) if m["round"] == 1]
    assert entry["participants"] == [str(NODES[0])]
    assert "local-epochs=0" in entry["failures"][str(NODES[1])]


# -- failures ----------------------------------------------------------------------------------
def test_a_failing_datasite_is_reported_and_the_other_carries_on(
    project: Path, datasets: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for split in ("train", "test"):
        frame = pd.read_csv(datasets[1] / f"{split}.csv").drop(columns=["Glucose"])
        frame.to_csv(broken / f"{split}.csv", index=False)

    run_app(project, [datasets[0], broken], {"num-server-rounds": 2})

    metrics = metrics_of(project)
    assert metrics[-1]["participants"] == [str(NODES[0])]
    assert "Glucose" in metrics[-1]["failures"][str(NODES[1])]
    assert metrics[-1]["num-examples"] == len(pd.read_csv(datasets[0] / "test.csv"))
    stats = json.loads((project / "weights" / "preprocessing.json").read_text())
    assert stats["rows"] == len(pd.read_csv(datasets[0] / "train.csv"))


def test_no_datasite_with_data_stops_the_run_with_a_clear_error(
    project: Path, tmp_path: Path
) -> None:
    empty = [tmp_path / "empty1", tmp_path / "empty2"]
    for folder in empty:
        folder.mkdir()
    with pytest.raises(RuntimeError, match="train.csv"):
        run_app(project, empty, {"num-server-rounds": 1})


# -- quality -----------------------------------------------------------------------------------
def test_federated_model_is_within_two_points_of_the_centralised_one(
    project: Path, datasets: list[Path]
) -> None:
    run_app(project, datasets)  # the app's defaults
    federated = metrics_of(project)[-1]
    baseline = load_script(project / "centralised_baseline.py", "fl_diabetes_prediction")
    central, _ = baseline.train_centralised(datasets)

    assert federated["num-examples"] == central.num_examples
    assert abs(federated["accuracy"] - central.accuracy) <= 0.02
    assert abs(federated["auc"] - central.auc) <= 0.02
    assert federated["auc-max-error"] < 0.01


def test_federated_auc_from_histograms_matches_the_exact_auc(project: Path) -> None:
    model = load_script(project / "fl_diabetes_prediction" / "model.py", "fl_diabetes_prediction")
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.35).astype(float)
    scores = 1 / (1 + np.exp(-(rng.normal(size=500) + 1.5 * labels)))
    halves = [slice(0, 200), slice(200, 500)]  # two datasites' histograms, added up
    hists = [model.score_histograms(scores[h], labels[h], 100) for h in halves]
    auc, max_error = model.auc_from_histograms(sum(h[0] for h in hists), sum(h[1] for h in hists))
    exact = model.exact_auc(scores, labels)
    assert abs(auc - exact) <= max_error
    assert max_error < 0.01


def test_baseline_script_prints_the_table(project: Path, datasets: list[Path]) -> None:
    done = subprocess.run(
        [sys.executable, str(project / "centralised_baseline.py"), "--no-federated", "--data"]
        + [str(d) for d in datasets],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project.parent,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("| model | accuracy | ROC AUC")
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[0].startswith("centralised") and 0.6 < float(cells[1]) <= 1.0
    assert int(cells[4]) == len(pooled_frame(datasets, "test"))


# -- end to end, over the real transport ---------------------------------------------------------
def test_simulation_over_the_real_transport_trains_and_resumes(
    project: Path, tmp_path: Path
) -> None:
    import syft_flwr

    mock = real_split_dirs("mock") or make_split_dirs(tmp_path / "mock", rows=200)
    uninterrupted = copy_project(APP, tmp_path / "uninterrupted")
    for folder in (project, uninterrupted):
        syft_flwr.bootstrap(folder, aggregator=AGGREGATOR, datasites=DATASITES)

    syft_flwr.run(uninterrupted, mock, run_config={"num-server-rounds": 3})
    syft_flwr.run(project, mock, run_config={"num-server-rounds": 2})
    syft_flwr.run(project, mock, run_config={"num-server-rounds": 3, "resume": True})

    metrics = metrics_of(project)
    assert [m["round"] for m in metrics] == [0, 1, 2, 3]
    assert metrics[-1]["participants"] == sorted(DATASITES)
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert metrics == metrics_of(uninterrupted)
    for key, value in weights_of(project, 3).items():
        assert np.array_equal(value, weights_of(uninterrupted, 3)[key])
