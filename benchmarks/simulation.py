"""Wall time of a fresh process simulating fed-analytics-diabetes (2 datasites), and where it goes.

    python benchmarks/simulation.py [--repeat 5]

Prints a table and writes benchmarks/results/simulation.json. Targets on the 2-core machine:
1 round <= 2.0 s and 3 rounds <= 2.5 s (median of 5 fresh processes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "fed-analytics-diabetes"
DATA = REPO / "datasets" / "pima-indians-diabetes-database"

RUN_SCRIPT = """
import sys, time
t0 = time.perf_counter()
import syft_flwr
# what the run would import on its way (the toolkit, flwr, the app's matplotlib), imported
# first so that the run's own time is measured apart
import syft_flwr.simulation, syft_flwr.transport, matplotlib.figure, matplotlib.backends.backend_agg
t1 = time.perf_counter()
result = syft_flwr.run(sys.argv[1], sys.argv[2:4], run_config={{"num-server-rounds": {rounds}}})
t2 = time.perf_counter()
print(f"IMPORT {{t1 - t0:.4f}} RUN {{t2 - t1:.4f}} ROUNDS {{result.rounds}}", flush=True)
"""

PLOT_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fed_analytics_diabetes import client_app, figures, settings, statistics
edges = settings.bin_edges({})
stats = statistics.local_statistics(client_app.load_data(Path(sys.argv[2])), edges)
import matplotlib.figure, matplotlib.backends.backend_agg  # imports are counted apart
t = time.perf_counter()
for feature in settings.HISTOGRAM_FEATURES:
    figures.histogram_png(stats, feature, Path(sys.argv[3]) / f"{feature}.png", datasites=2)
print(time.perf_counter() - t)
"""


def _prepare(workdir: Path) -> Path:
    sys.path.insert(0, str(REPO / "toolkit"))
    import syft_flwr

    project = workdir / "fed-analytics-diabetes"
    shutil.copytree(
        APP,
        project,
        ignore=shutil.ignore_patterns("__pycache__", "figures", "simulation_logs", "main.py"),
    )
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.split("[tool.syft_flwr]")[0])
    syft_flwr.bootstrap(
        project, aggregator="ds@openmined.org", datasites=["do1@openmined.org", "do2@openmined.org"]
    )
    return project


def _time(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def _plot_cost(project: Path, mock: str) -> float:
    """Seconds the ServerApp spends drawing its figures (matplotlib already imported)."""
    out = tempfile.mkdtemp()
    try:
        _, stdout = _time([sys.executable, "-c", PLOT_SCRIPT, str(project), mock, out])
        return float(stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="syft_flwr_bench_"))
    try:
        project = _prepare(workdir)
        mocks = [str(DATA / f"do{i}" / "mock") for i in (1, 2)]
        results: dict[str, dict] = {}
        for rounds in (1, 3):
            script = RUN_SCRIPT.format(rounds=rounds)
            walls, imports, runs = [], [], []
            for _ in range(args.repeat):
                wall, out = _time([sys.executable, "-c", script, str(project), *mocks])
                fields = out.split()
                walls.append(wall)
                imports.append(float(fields[fields.index("IMPORT") + 1]))
                runs.append(float(fields[fields.index("RUN") + 1]))
            results[f"{rounds}_round"] = {
                "wall_median_s": statistics.median(walls),
                "walls_s": walls,
                "imports_median_s": statistics.median(imports),
                "run_median_s": statistics.median(runs),
            }
        interpreter = statistics.median(
            _time([sys.executable, "-c", "pass"])[0] for _ in range(args.repeat)
        )
        results["breakdown"] = {
            "interpreter_start_s": interpreter,
            "plotting_s": _plot_cost(project, mocks[0]),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    b = results["breakdown"]
    for name in ("1_round", "3_round"):
        r = results[name]
        measured = b["interpreter_start_s"] + r["imports_median_s"] + r["run_median_s"]
        r["teardown_s"] = r["wall_median_s"] - measured  # what is left: the interpreter's exit
    out = REPO / "benchmarks" / "results" / "simulation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"{'variant':<10}{'median wall (s)':>17}{'target':>9}   runs")
    for name, target in (("1_round", 2.0), ("3_round", 2.5)):
        r = results[name]
        runs = " ".join(f"{w:.2f}" for w in r["walls_s"])
        print(f"{name:<10}{r['wall_median_s']:>17.2f}{target:>9.1f}   {runs}")
    for name in ("1_round", "3_round"):
        r = results[name]
        print(
            f"where the time goes ({name}): interpreter {b['interpreter_start_s']:.2f} s, "
            f"imports {r['imports_median_s']:.2f} s (syft_flwr, flwr, matplotlib), "
            f"run {r['run_median_s']:.2f} s (of which figures {b['plotting_s']:.2f} s; the "
            f"rest is keys, data loading and the transport), interpreter teardown "
            f"{r['teardown_s']:.2f} s"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
