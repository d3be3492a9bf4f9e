"""Fixtures of the fault tests: the uninterrupted FL run that interrupted runs must equal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import syft_flwr
from tests.faults.helpers import FL_APP, FL_CONFIG, pima_data, prepare_project


@dataclass(frozen=True)
class FLRun:
    """What a run of fl-diabetes-prediction saved: the model after each round, the metrics."""

    weights: dict[int, dict[str, np.ndarray]]
    metrics: list[dict[str, Any]]

    @classmethod
    def load(cls, weights_dir: Path) -> FLRun:
        weights = {}
        for path in weights_dir.glob("round-*.npz"):
            with np.load(path) as data:
                weights[int(path.stem.removeprefix("round-"))] = {k: data[k] for k in data.files}
        metrics = json.loads((weights_dir / "metrics.json").read_text())
        return cls(weights, metrics)


@pytest.fixture(scope="session")
def fl_reference(tmp_path_factory: pytest.TempPathFactory) -> FLRun:
    """An uninterrupted run of FL_CONFIG on the private data (the same seed), simulated."""
    tmp = tmp_path_factory.mktemp("fl_reference")
    project = prepare_project(FL_APP, tmp / "project", FL_CONFIG)
    syft_flwr.run(project, [pima_data(1)[0], pima_data(2)[0]])
    return FLRun.load(project / "weights")


def assert_same_run(got: FLRun, want: FLRun) -> None:
    """Every round's model and metrics equal (bit for bit) those of the reference run."""
    assert sorted(got.weights) == sorted(want.weights)
    for server_round, arrays in want.weights.items():
        for name, array in arrays.items():
            np.testing.assert_array_equal(
                got.weights[server_round][name], array, err_msg=f"round {server_round} {name}"
            )
    assert [m["round"] for m in got.metrics] == [m["round"] for m in want.metrics]
    keys = ("loss", "accuracy", "auc", "num-examples", "train-loss", "participants")
    for g, w in zip(got.metrics, want.metrics, strict=True):
        assert {k: g[k] for k in keys} == {k: w[k] for k in keys}, f"round {w['round']}"
