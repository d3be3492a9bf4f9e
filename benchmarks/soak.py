"""Soak: the 2-datasite simulation of fed-analytics-diabetes, many times in a row, in one process.

    python benchmarks/soak.py [--runs 1000] [--results benchmarks/results/soak.json]

Each run bootstraps a fresh temporary copy of the app and calls ``syft_flwr.run`` on the two
data owners' mock data. A run fails if ``syft_flwr.run`` raises, or if its
``figures/summary.json`` differs from the summary computed once, with pandas, from the mock
data: a wrong but "successful" run is a failure too. Prints progress every 50 runs and ends
with the line ``N runs, F failures, median X s / p99 Y s run time``; writes the results as
JSON (also every 50 runs, so a hang leaves them behind); exits 1 if any run failed.

The logs of the first failing runs are kept in ``soak_failures/`` next to the results file.
A run that takes longer than ``--hang-after`` seconds dumps every thread's stack and ends the
soak (exit code 1, results of the runs before it written): a hang is a failure too, never a
silent wait.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import tomllib
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "fed-analytics-diabetes"
MOCKS = [REPO / "datasets" / "pima-indians-diabetes-database" / f"do{i}" / "mock" for i in (1, 2)]
AGGREGATOR = "ds@openmined.org"
DATASITES = ["do1@openmined.org", "do2@openmined.org"]
FEATURES = [
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
]
LABEL = "y"
HISTOGRAM_BINS = {"Glucose": "glucose-bins", "BMI": "bmi-bins", "Age": "age-bins"}
FIGURES = [f"{feature}_histogram.png" for feature in HISTOGRAM_BINS]
PROGRESS_EVERY = 50
KEEP_FAILURES = 10
REL_TOL = 1e-9  # sums are added in another order than pandas adds them


# -- what every run must produce ---------------------------------------------------------------
def _edges(spec: str) -> list[float]:
    """``"start:stop:width"`` or ``"e0,e1,..."``: the app's bin syntax."""
    if ":" in spec:
        start, stop, width = (float(x) for x in spec.split(":"))
        steps = round((stop - start) / width)
        return [start + i * width for i in range(steps + 1)]
    return [float(x) for x in spec.split(",")]


def expected_summary(app: Path = APP, mocks: list[Path] = MOCKS) -> dict[str, Any]:
    """summary.json of a correct run, from the mock CSVs with pandas (not the app's code)."""
    import numpy as np
    import pandas as pd

    with (app / "pyproject.toml").open("rb") as fh:
        config = tomllib.load(fh)["tool"]["flwr"]["app"]["config"]
    frame = pd.concat(
        [pd.read_csv(folder / name) for folder in mocks for name in ("train.csv", "test.csv")],
        ignore_index=True,
    )
    outcomes = {str(o): frame[frame[LABEL] == o] for o in (0, 1)}
    features: dict[str, Any] = {}
    for feature in FEATURES:
        entry: dict[str, Any] = {
            "totals": {
                o: {
                    "count": int(part[feature].count()),
                    "sum": float(part[feature].sum()),
                    "mean": float(part[feature].mean()),
                    "zeros": int((part[feature] == 0).sum()),
                }
                for o, part in outcomes.items()
            }
        }
        if feature in HISTOGRAM_BINS:
            edges = _edges(str(config[HISTOGRAM_BINS[feature]]))
            values = {
                o: part[feature].dropna().to_numpy(dtype=float) for o, part in outcomes.items()
            }
            entry["bin_edges"] = edges
            entry["counts"] = {
                o: np.histogram(v, bins=edges)[0].tolist() for o, v in values.items()
            }
            entry["below"] = {o: int((v < edges[0]).sum()) for o, v in values.items()}
            entry["above"] = {o: int((v > edges[-1]).sum()) for o, v in values.items()}
        features[feature] = entry
    answered = sorted(DATASITES)
    return {
        "app": "fed-analytics-diabetes",
        "rounds": int(config.get("num-server-rounds", 1)),
        "datasites": len(DATASITES),
        "answered": answered,
        "rows_by_datasite": {
            email: sum(len(pd.read_csv(folder / name)) for name in ("train.csv", "test.csv"))
            for email, folder in sorted(zip(DATASITES, mocks, strict=True))
        },
        "failed": {},
        "complete": True,
        "history": [
            {"round": r, "answered": answered, "failed": {}}
            for r in range(1, int(config.get("num-server-rounds", 1)) + 1)
        ],
        "label": LABEL,
        "rows": {o: len(part) for o, part in outcomes.items()},
        "features": features,
    }


def compare(got: Any, want: Any, where: str = "summary") -> list[str]:
    """Differences between a run's summary and the expected one (empty: equal).

    Integers, strings and structure must match exactly; floats within REL_TOL.
    """
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {got!r:.80}"]
        problems = [f"{where}: unexpected key {k!r}" for k in sorted(set(got) - set(want))]
        problems += [f"{where}: missing key {k!r}" for k in sorted(set(want) - set(got))]
        for key in want:
            if key in got:
                problems += compare(got[key], want[key], f"{where}.{key}")
        return problems
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: expected {want!r:.120}, got {got!r:.120}"]
        return [
            p
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for p in compare(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float):
        if isinstance(got, bool) or not isinstance(got, int | float):
            return [f"{where}: expected {want!r}, got {got!r}"]
        if not math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-9):
            return [f"{where}: expected {want!r}, got {got!r}"]
        return []
    if type(got) is not type(want) or got != want:
        return [f"{where}: expected {want!r}, got {got!r}"]
    return []


# -- one run ----------------------------------------------------------------------------------
def _project(workdir: Path) -> Path:
    import syft_flwr

    project = workdir / "fed-analytics-diabetes"
    shutil.copytree(
        APP,
        project,
        ignore=shutil.ignore_patterns(
            "__pycache__", "figures", "weights", "simulation_logs", "main.py"
        ),
    )
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().split("[tool.syft_flwr]")[0])
    syft_flwr.bootstrap(project, aggregator=AGGREGATOR, datasites=DATASITES)
    return project


def run_once(
    workdir: Path, expected: dict[str, Any], round_timeout: float
) -> tuple[float, list[str]]:
    """One fresh bootstrap + ``syft_flwr.run``; returns (seconds in run, problems)."""
    import syft_flwr

    project = _project(workdir)
    started = time.perf_counter()
    try:
        result = syft_flwr.run(project, MOCKS, timeout=round_timeout)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and described
        elapsed = time.perf_counter() - started
        return elapsed, [f"syft_flwr.run raised {type(exc).__name__}: {exc}"]
    elapsed = time.perf_counter() - started
    problems = []
    if result.rounds != expected["rounds"]:
        problems.append(f"result.rounds is {result.rounds}, expected {expected['rounds']}")
    want_participants = {r: sorted(DATASITES) for r in range(1, expected["rounds"] + 1)}
    if result.participants != want_participants:
        problems.append(f"result.participants is {result.participants}")
    figures = project / "figures"
    try:
        summary = json.loads((figures / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        return elapsed, [*problems, f"no readable figures/summary.json: {exc}"]
    problems += compare(summary, expected)
    for name in FIGURES:
        png = figures / name
        if not png.is_file() or png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            problems.append(f"figures/{name} is missing or not a PNG")
    return elapsed, problems


# -- the soak ---------------------------------------------------------------------------------
def _resources() -> dict[str, Any]:
    """Threads, open file descriptors and resident memory of this process (leaks show here)."""
    fds = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else None
    rss_mb = None
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_mb = round(int(line.split()[1]) / 1024, 1)
    return {"threads": threading.active_count(), "open_fds": fds, "rss_mb": rss_mb}


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation, as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _quiet() -> None:
    """Only warnings and errors on the console: 1000 runs of INFO logs would drown the
    progress lines (each run's full logs still go to its simulation_logs/)."""
    import logging

    import flwr.common.logger  # noqa: F401 - installs Flower's console handler first
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    for handler in logging.getLogger("flwr").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.WARNING)


def _keep(workdir: Path, dest: Path) -> None:
    project = workdir / "fed-analytics-diabetes"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("simulation_logs", "figures"):
        if (project / name).is_dir():
            shutil.copytree(project / name, dest / name, dirs_exist_ok=True)


def soak(runs: int, results_path: Path, round_timeout: float, hang_after: float) -> int:
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    sys.path.insert(0, str(REPO / "toolkit"))
    import flwr

    import syft_flwr

    _quiet()
    expected = expected_summary()
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    failures_dir = results_path.parent / "soak_failures"
    base = Path(tempfile.mkdtemp(prefix="syft_flwr_soak_"))
    times: list[float] = []
    failures: list[dict[str, Any]] = []
    resources = [{"run": 0, **_resources()}]
    soak_started = time.perf_counter()

    def report(done: int) -> dict[str, Any]:
        return {
            "app": "fed-analytics-diabetes",
            "datasites": DATASITES,
            "runs_requested": runs,
            "runs": done,
            "failures": len(failures),
            "failed_runs": failures,
            "run_time_s": {
                "median": _percentile(times, 50),
                "p99": _percentile(times, 99),
                "min": min(times, default=float("nan")),
                "max": max(times, default=float("nan")),
                "mean": sum(times) / len(times) if times else float("nan"),
            },
            "total_s": round(time.perf_counter() - soak_started, 2),
            "resources": resources,
            "started_at": started_at,
            "python": platform.python_version(),
            "flwr": flwr.__version__,
            "syft_flwr": syft_flwr.__version__,
            "cpus": os.cpu_count(),
        }

    def write(done: int) -> None:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = results_path.with_name(f".{results_path.name}.tmp")
        tmp.write_text(json.dumps(report(done), indent=2, allow_nan=True) + "\n")
        os.replace(tmp, results_path)

    print(f"soak: {runs} runs of the fed-analytics-diabetes simulation (2 datasites)", flush=True)
    done = 0
    try:
        for i in range(1, runs + 1):
            workdir = base / f"run-{i}"
            workdir.mkdir()
            faulthandler.dump_traceback_later(hang_after, exit=True)
            try:
                elapsed, problems = run_once(workdir, expected, round_timeout)
            except Exception as exc:  # noqa: BLE001 - bootstrap or checking broke: a failure
                elapsed, problems = (
                    float("nan"),
                    [
                        f"{type(exc).__name__}: {exc}",
                        *traceback.format_exc().splitlines()[-6:],
                    ],
                )
            finally:
                faulthandler.cancel_dump_traceback_later()
            if not math.isnan(elapsed):
                times.append(elapsed)
            if problems:
                kept = None
                if len(failures) < KEEP_FAILURES:
                    kept = failures_dir / f"{started_at}-run-{i}"
                    _keep(workdir, kept)
                failures.append({"run": i, "problems": problems[:20], "logs": str(kept)})
                print(f"run {i} FAILED: {problems[0]}", file=sys.stderr, flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
            done = i
            if i == 1 or i % PROGRESS_EVERY == 0 or i == runs:  # 1: everything is loaded
                resources.append({"run": i, **_resources()})
                write(done)
            if i % PROGRESS_EVERY == 0:
                print(
                    f"{i}/{runs} runs, {len(failures)} failures, median "
                    f"{_percentile(times, 50):.3f} s, last {elapsed:.3f} s, "
                    f"threads {resources[-1]['threads']}, fds {resources[-1]['open_fds']}, "
                    f"rss {resources[-1]['rss_mb']} MB",
                    flush=True,
                )
    except KeyboardInterrupt:
        print(f"interrupted after {done} runs", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        write(done)

    first, last = resources[0], resources[-1]
    print(
        f"resources: threads {first['threads']} -> {last['threads']}, open fds "
        f"{first['open_fds']} -> {last['open_fds']}, rss {first['rss_mb']} -> "
        f"{last['rss_mb']} MB; results in {results_path}"
    )
    print(
        f"{done} runs, {len(failures)} failures, median {_percentile(times, 50):.3f} s / "
        f"p99 {_percentile(times, 99):.3f} s run time",
        flush=True,
    )
    return 1 if failures or done < runs else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="how many runs (default 1000)")
    parser.add_argument(
        "--results",
        type=Path,
        default=REPO / "benchmarks" / "results" / "soak.json",
        help="where to write the JSON results (default benchmarks/results/soak.json)",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=60.0,
        help="seconds a run's round waits for the datasites (default 60)",
    )
    parser.add_argument(
        "--hang-after",
        type=float,
        default=300.0,
        help="a run taking longer than this dumps all stacks and ends the soak (default 300)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return soak(args.runs, args.results.resolve(), args.round_timeout, args.hang_after)


if __name__ == "__main__":
    sys.exit(main())
