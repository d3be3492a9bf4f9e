"""benchmarks/soak.py: 20 simulations in a row, each checked against pandas, none may fail."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import REPO

SOAK = REPO / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_benchmark", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_twenty_runs_in_a_row_all_match_the_pandas_summary(tmp_path: Path) -> None:
    results = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(SOAK), "--runs", "20", "--results", str(results)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    last = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"20 runs, 0 failures, median [\d.]+ s / p99 [\d.]+ s run time", last)
    report = json.loads(results.read_text())
    assert report["runs"] == 20 and report["failures"] == 0 and report["failed_runs"] == []
    assert 0 < report["run_time_s"]["median"] <= report["run_time_s"]["p99"]
    resources = {r["run"]: r for r in report["resources"]}
    assert sorted(resources) == [0, 1, 20]
    # once everything is loaded (after the first run), runs leave nothing behind: a run that
    # kept its garbage (a few MB each) would add well over this in 19 runs
    assert resources[20]["rss_mb"] - resources[1]["rss_mb"] < 80
    assert resources[20]["threads"] == resources[1]["threads"]
    assert not (tmp_path / "soak_failures").exists()


def test_a_wrong_but_successful_summary_counts_as_a_failure(soak: ModuleType) -> None:
    expected = soak.expected_summary()
    assert soak.compare(copy.deepcopy(expected), expected) == []
    assert sum(expected["rows"].values()) == 200  # both mock parts, train and test

    wrong = copy.deepcopy(expected)
    wrong["features"]["Glucose"]["counts"]["1"][12] += 1
    assert soak.compare(wrong, expected) == [
        "summary.features.Glucose.counts.1[12]: expected "
        f"{expected['features']['Glucose']['counts']['1'][12]}, "
        f"got {expected['features']['Glucose']['counts']['1'][12] + 1}"
    ]

    wrong = copy.deepcopy(expected)
    wrong["features"]["BMI"]["totals"]["0"]["sum"] *= 1 + 1e-6
    wrong["answered"] = ["do1@openmined.org"]
    wrong["datasites"] = 1
    del wrong["features"]["Age"]["below"]
    problems = soak.compare(wrong, expected)
    assert len(problems) == 4
    assert any(p.startswith("summary.features.BMI.totals.0.sum") for p in problems)
    assert "summary.features.Age: missing key 'below'" in problems

    wrong = copy.deepcopy(expected)
    wrong["rows"]["0"] = float(wrong["rows"]["0"])  # an int must stay an int
    assert soak.compare(wrong, expected) != []
