"""`syft-flwr demo` (what `make demo` runs), end to end in a real subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.support import REPO

DATA = REPO / "datasets" / "pima-indians-diabetes-database"


def _demo(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "syft_flwr.cli", "demo", "--folder", str(folder), *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _private_union() -> pd.DataFrame:
    return pd.concat(
        pd.read_csv(DATA / f"do{i}" / "private" / f"{split}.csv")
        for i in (1, 2)
        for split in ("train", "test")
    )


def test_demo_runs_the_whole_workflow_on_private_data(tmp_path: Path) -> None:
    proc = _demo(tmp_path / "demo")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "[7/7]" in proc.stdout and "Summary" in proc.stdout
    figures = tmp_path / "demo" / "ds_project" / "fed-analytics-diabetes" / "figures"
    assert str(figures) in proc.stdout
    for feature in ("Glucose", "BMI", "Age"):
        assert (figures / f"{feature}_histogram.png").stat().st_size > 10_000

    summary = json.loads((figures / "summary.json").read_text())
    union = _private_union()
    assert summary["datasites"] == 2
    for outcome in (0, 1):
        rows = union[union["y"] == outcome]
        totals = summary["features"]["Glucose"]["totals"][str(outcome)]
        assert totals["count"] == len(rows)
        assert totals["mean"] == pytest.approx(rows["Glucose"].mean(), rel=1e-12)

    mock_figures = tmp_path / "demo" / "ds_outputs" / "mock_figures"
    assert json.loads((mock_figures / "summary.json").read_text())["datasites"] == 2
    assert summary != json.loads((mock_figures / "summary.json").read_text())


def test_demo_fl_trains_the_model(tmp_path: Path) -> None:
    proc = _demo(tmp_path / "demo", "--fl")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    weights = tmp_path / "demo" / "ds_project" / "fl-diabetes-prediction" / "weights"
    metrics = json.loads((weights / "metrics.json").read_text())
    assert (weights / "round-1.npz").exists()
    assert metrics[0]["round"] == 0 and metrics[-1]["round"] == 10
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"]
    assert metrics[-1]["loss"] < metrics[0]["loss"]


def test_demo_failure_is_reported_with_a_non_zero_exit(tmp_path: Path) -> None:
    blocker = tmp_path / "demo"
    blocker.write_text("a file where the demo folder should go")
    proc = _demo(blocker / "inner")
    assert proc.returncode != 0
    assert "DEMO FAILED" in proc.stderr or "error" in proc.stderr.lower()
