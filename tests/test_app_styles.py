"""Apps written for syft-flwr 0.5 and for plain Flower run unchanged: in a simulation and as
real data owners' jobs (each job a process started by the job runner, the aggregator
``main.py --active``).

- a syft-flwr-0.5-style analytics app: NumPyClient + server_fn, ``partition-id`` read from the
  node config, ``syft_flwr.strategy.FedAvgWithModelSaving``;
- an app whose ClientApp (and ServerApp) imports its own package when called;
- a Flower quickstart-style numpy app: message API and ``FedAvg.start(grid=...)``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import syft_flwr
from tests.faults.helpers import federation, prepare_project
from tests.support import FIXTURES

Writer = Callable[[Path, int], None]


def _legacy_rows(folder: Path, i: int) -> None:
    rows = {"age": [30.0 + i, 50.0 + i, 70.0], "glucose": [90.0, 110.0 * i, 130.0]}
    pd.DataFrame({k: v[: 2 + i % 2] for k, v in rows.items()}).to_csv(folder / "data.csv")


def _values(folder: Path, i: int) -> None:
    (folder / "values.txt").write_text("\n".join(str(float(v)) for v in range(i, 4 * i)) + "\n")


def _points(folder: Path, i: int) -> None:
    points = np.arange(6 * i, dtype=float).reshape(-1, 2) + i
    np.savetxt(folder / "points.csv", points, delimiter=",")


def _data(tmp: Path, write: Writer, read: Callable[[Path], np.ndarray]) -> tuple[list, np.ndarray]:
    """(private, mock) folders of two datasites, and the pooled private rows."""
    pairs, private_rows = [], []
    for i in (1, 2):
        private, mock = tmp / f"private{i}", tmp / f"mock{i}"
        private.mkdir()
        mock.mkdir()
        write(private, i)
        write(mock, i + 2)
        pairs.append((private, mock))
        private_rows.append(read(private))
    return pairs, np.concatenate(private_rows)


def _read_legacy(folder: Path) -> np.ndarray:
    return pd.read_csv(folder / "data.csv")[["age", "glucose"]].to_numpy()


def _read_values(folder: Path) -> np.ndarray:
    return np.loadtxt(folder / "values.txt", ndmin=1)


def _read_points(folder: Path) -> np.ndarray:
    return np.loadtxt(folder / "points.csv", delimiter=",", ndmin=2)


def _check_legacy(project: Path, rows: np.ndarray) -> None:
    from safetensors.numpy import load_file

    saved = load_file(str(project / "weights" / "parameters_round_1.safetensors"))
    np.testing.assert_allclose(saved["layer_0"], rows.mean(axis=0))  # FedAvg: the pooled mean
    initial = load_file(str(project / "weights" / "parameters_round_0.safetensors"))
    np.testing.assert_array_equal(initial["layer_0"], np.zeros(2))
    partitions = json.loads((project / "partitions.json").read_text())
    assert partitions == [{"partition-id": 0, "num-partitions": 1}] * 2


def _check_self_import(project: Path, rows: np.ndarray) -> None:
    result = json.loads((project / "result.json").read_text())
    assert result == {"mean": pytest.approx(rows.mean()), "count": len(rows), "rounds": 2}


def _check_quickstart(project: Path, rows: np.ndarray) -> None:
    np.testing.assert_allclose(np.load(project / "final_model.npy"), rows.mean(axis=0))


STYLES = {
    "syft-flwr-0.5": ("legacy_app", _legacy_rows, _read_legacy, _check_legacy),
    "self-import": ("self_import_app", _values, _read_values, _check_self_import),
    "flower-quickstart": ("quickstart_app", _points, _read_points, _check_quickstart),
}


@pytest.mark.parametrize("style", STYLES)
def test_an_app_runs_unchanged_in_a_simulation(style: str, tmp_path: Path) -> None:
    folder, write, read, check = STYLES[style]
    original = (FIXTURES / folder / "pyproject.toml").read_text()
    project = prepare_project(FIXTURES / folder, tmp_path / "project")
    pairs, _ = _data(tmp_path, write, read)
    mocks = [mock for _, mock in pairs]
    result = syft_flwr.run(project, mocks)
    assert result and result.rounds >= 1
    assert set(result.participants[1]) == {"do1@openmined.org", "do2@openmined.org"}
    mock_rows = np.concatenate([read(m) for m in mocks])
    check(project, mock_rows)
    # the app's own config is untouched apart from the [tool.syft_flwr] table
    app_config = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert "partition-id" not in app_config["config"]
    assert (FIXTURES / folder / "pyproject.toml").read_text() == original


@pytest.mark.parametrize("style", STYLES)
def test_an_app_runs_unchanged_as_data_owners_jobs(style: str, tmp_path: Path) -> None:
    folder, write, read, check = STYLES[style]
    pairs, private_rows = _data(tmp_path, write, read)
    with federation(tmp_path, FIXTURES / folder, pairs) as fed:
        for owner in fed.owners.values():
            owner.start()
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        assert all(owner.run.returncode == 0 for owner in fed.owners.values()), fed.logs()
        check(fed.project, private_rows)
