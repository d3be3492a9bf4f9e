"""Scale benchmark: syft_flwr.run at 10 to 5,000 datasites against Flower's simulation engine.

    make benchmarks                        # installs the bench extra (Ray) and runs everything
    python benchmarks/scale.py [--sizes 10 100 1000 5000] [--rounds 3] [--flower-sizes 1000]
                               [--idle-size 1000] [--idle-seconds 3] [--timeout 300]

The app is tests/fixtures/sum_app: every datasite sums the integers of its own small CSV and
the ServerApp checks the exact total of every round. Each run is a fresh process (in its own
process group, killed after ``--timeout`` seconds); for each it measures

- wall time, from process start to exit (imports, Ray's start-up and teardown included);
- peak RSS: the sum over the process tree (Ray's workers included), sampled every 50 ms;
- each round's time, as the ServerApp prints it;
- exactness: every round's total is the expected one over all N datasites (and, under
  syft_flwr, every datasite is among the round's participants).

Flower's side runs the same app, unchanged, through Flower's simulation engine with the Ray
backend (``pip install -e '.[simulation]'``), for ``--flower-sizes``; without Ray it is reported as
unavailable. Idle CPU: a syft_flwr run of ``--idle-size`` datasites whose ServerApp sleeps
``--idle-seconds`` before its first round; the CPU time the process tree used during that
sleep (less its first second, while the datasites settle) as a % of one core.

A failed or timed-out run is reported in the table and the benchmark goes on; the exit code is
non-zero only when the harness itself crashes. Results go to benchmarks/results/scale.json.

Targets on the 2-core machine: exact at every N; 1,000 datasites x 3 rounds in <= 15 s wall
and <= 500 MB peak RSS, and >= 2x faster than Flower's simulation engine in the same run;
round time growing at most linearly with N; an idle datasite using no CPU (~0 %).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
SAMPLE_EVERY = 0.05  # seconds between samples of the process tree
IDLE_SETTLE = 1.0  # seconds of the idle sleep left out of the idle CPU measurement
TARGET_WALL_S, TARGET_RSS_MB, TARGET_SPEEDUP, TARGET_N = 15.0, 500.0, 2.0, 1000
LINEAR_SLACK = 1.25  # round time per datasite may grow this much from one size to the next
ROUND_LINE = re.compile(r"sum_app: round=(\d+) nodes=(\d+) total=(-?\d+) .*seconds=([\d.]+)")
IDLE_LINE = re.compile(r"sum_app: idle (start|end)=([\d.]+)")


# --- the timed processes: ``scale.py --child syft|flower PROJECT N RUN_CONFIG_JSON`` ---------


def _child_syft(project: str, n: int, run_config: dict) -> None:
    import syft_flwr

    mocks = [Path(run_config["data-root"]) / str(i) for i in range(n)]
    result = syft_flwr.run(project, mocks, run_config=run_config)
    answered = all(
        len(set(result.participants.get(r, []))) == n for r in range(1, result.rounds + 1)
    )
    print(f"bench: rounds={result.rounds} participants_ok={answered}", flush=True)


def _child_flower(project: str, n: int, run_config: dict) -> None:
    """The app through Flower's simulation engine, as ``flwr run`` drives it for a local
    simulation: the run config is the app's pyproject.toml (which the harness wrote), since
    the public ``run_simulation`` gives the apps an empty one."""
    sys.path.insert(0, project)
    from sum_app.client_app import app as client_app
    from sum_app.server_app import app as server_app

    from syft_flwr.transport import flwr_compat

    flwr_compat.run_flower_simulation(project, server_app, client_app, num_supernodes=n)
    print("bench: flower run finished", flush=True)


# --- the harness ----------------------------------------------------------------------------


@dataclass
class RunResult:
    engine: str  # "syft_flwr" or "flower"
    n: int
    rounds: int
    status: str = "ok"  # "ok", or why the run failed
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    round_s: list[float] = field(default_factory=list)
    exact: bool = False
    idle_cpu_percent: float | None = None
    error: str = ""

    @property
    def mean_round_s(self) -> float | None:
        return sum(self.round_s) / len(self.round_s) if self.round_s else None


class TreeSampler(threading.Thread):
    """Samples the RSS and CPU time of a process and all its descendants every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, float, float]] = []  # (time, rss bytes, cpu seconds)
        self.seen: dict[int, psutil.Process] = {}
        self._done = threading.Event()

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return
        rss = cpu = 0.0
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                times = proc.cpu_times()
                cpu += times.user + times.system
                self.seen.setdefault(proc.pid, proc)
            except self._psutil.Error:
                continue
        self.samples.append((time.time(), rss, cpu))

    def run(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak_rss_mb(self) -> float | None:
        return max(s[1] for s in self.samples) / 2**20 if self.samples else None

    def cpu_between(self, start: float, end: float) -> tuple[float, float] | None:
        """(CPU seconds, wall seconds) between the first sample after ``start`` and the last
        before ``end``."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None
        return inside[-1][2] - inside[0][2], inside[-1][0] - inside[0][0]

    def kill_leftovers(self) -> None:
        """Kill the descendants that outlived the run (e.g. Ray's daemons), by pid."""
        for pid, proc in self.seen.items():
            if pid != self.root.pid and proc.is_running():
                with contextlib.suppress(self._psutil.Error):
                    proc.kill()


def _why(stdout: str, stderr: str) -> str:
    """A failed run's cause in one line: its last exception line, else its last line."""
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return (errors or lines or ["no output"])[-1][:300]


def _timed_run(
    engine: str, project: Path, n: int, rounds: int, run_config: dict, workdir: Path, timeout: float
) -> tuple[RunResult, TreeSampler, str]:
    """Run one child process; returns its result, its samples and its stdout."""
    result = RunResult(engine, n, rounds)
    child = "syft" if engine == "syft_flwr" else "flower"
    cmd = [sys.executable, __file__, "--child", child, str(project), str(n), json.dumps(run_config)]
    env = {**os.environ, "TMPDIR": str(workdir), "RAY_TMPDIR": str(workdir)}
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except BaseException as exc:  # the timeout, or the harness interrupted: kill the run
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
            if not isinstance(exc, subprocess.TimeoutExpired):
                sampler.stop()
                sampler.kill_leftovers()
                raise
            result.status = f"timeout after {timeout:.0f} s"
        result.wall_s = time.perf_counter() - started
        sampler.stop()
        sampler.kill_leftovers()
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if result.status == "ok" and rc != 0:
        result.status = f"failed (exit {rc})"
    if result.status != "ok":
        result.error = _why(stdout, stderr)
    result.peak_rss_mb = sampler.peak_rss_mb()
    rounds_seen = [m.groups() for m in ROUND_LINE.finditer(stdout)]
    result.round_s = [float(m[3]) for m in rounds_seen]
    want = str(run_config["expected-total"])
    result.exact = (
        result.status == "ok"
        and len(rounds_seen) == rounds
        and all(int(m[1]) == n and m[2] == want for m in rounds_seen)
        and (engine == "flower" or "participants_ok=True" in stdout)
    )
    return result, sampler, stdout


def _flower_available() -> str:
    """Empty if Ray can be imported, else why not."""
    probe = subprocess.run(
        [sys.executable, "-c", "import ray"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return ""
    why = _why(probe.stdout, probe.stderr)
    return f"ray is not installed ({why}): pip install -e '.[simulation]'"


def _write_flower_config(project: Path, run_config: dict) -> None:
    import tomlkit

    path = project / "pyproject.toml"
    doc = tomlkit.parse(path.read_text())
    doc["tool"]["flwr"]["app"]["config"].update(run_config)
    path.write_text(tomlkit.dumps(doc))


def bench(
    engine: str, n: int, rounds: int, top: Path, timeout: float, idle: float = 0.0
) -> RunResult:
    """One measured run of the sum app over ``n`` datasites, in its own temp folder."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.sum_app.federation import make_federation

    workdir = Path(tempfile.mkdtemp(prefix=f"{engine[0]}{n}_", dir=top))
    try:
        fed = make_federation(workdir, n, bootstrap=engine == "syft_flwr")
        config = fed.run_config(rounds, idle_seconds=idle)
        if engine == "flower":
            _write_flower_config(fed.project, config)
        result, sampler, stdout = _timed_run(
            engine, fed.project, n, rounds, config, workdir, timeout
        )
        marks = dict(IDLE_LINE.findall(stdout))
        if idle and {"start", "end"} <= marks.keys():
            used = sampler.cpu_between(float(marks["start"]) + IDLE_SETTLE, float(marks["end"]))
            if used:
                result.idle_cpu_percent = 100 * used[0] / used[1]
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _checks(syft: list[RunResult], flower: list[RunResult], idle: RunResult | None) -> dict:
    """Each target: met (True), missed (False; a failed run misses them all) or not measured."""
    big = {r.n: r for r in syft}.get(TARGET_N)
    base = {r.n: r for r in flower if r.exact}.get(TARGET_N)

    def at_target_n(met: Callable[[RunResult], bool]) -> bool | None:
        return None if big is None else big.exact and met(big)

    per_node = [r.mean_round_s / r.n for r in syft if r.exact and r.mean_round_s]
    linear = all(b <= a * LINEAR_SLACK for a, b in itertools.pairwise(per_node))
    return {
        "exact_at_every_n": all(r.exact for r in syft),
        f"wall_{TARGET_N}_le_{TARGET_WALL_S:g}s": at_target_n(lambda r: r.wall_s <= TARGET_WALL_S),
        f"rss_{TARGET_N}_le_{TARGET_RSS_MB:g}mb": at_target_n(
            lambda r: (r.peak_rss_mb or 0) <= TARGET_RSS_MB
        ),
        f"speedup_vs_flower_{TARGET_N}_ge_{TARGET_SPEEDUP:g}x": (
            None
            if base is None
            else at_target_n(lambda r: base.wall_s / r.wall_s >= TARGET_SPEEDUP)
        ),
        "round_time_at_most_linear": linear if len(per_node) > 1 else None,
        "idle_cpu_percent": None if idle is None else idle.idle_cpu_percent,
    }


def _table(syft: list[RunResult], flower: list[RunResult], idle: RunResult | None) -> str:
    flw = {r.n: r for r in flower if r.exact}
    head = (
        f"{'engine':<10}{'N':>6}{'wall s':>9}{'peak MB':>9}{'round s':>9}"
        f"{'ms/node':>9}{'exact':>7}  vs Flower / status"
    )
    legend = "round s: mean round time; ms/node: that per datasite (flat = linear growth)"
    rows = [legend, head]
    for r in [*syft, *flower]:
        per_node = r.mean_round_s * 1000 / r.n if r.mean_round_s else None
        note = r.status if r.status == "ok" else f"{r.status}: {r.error}".rstrip(": ")
        if r.engine == "syft_flwr" and r.exact and r.n in flw:
            note = f"{flw[r.n].wall_s / r.wall_s:.1f}x faster than Flower"
        rows.append(
            f"{r.engine:<10}{r.n:>6}{_fmt(r.wall_s, '.2f'):>9}{_fmt(r.peak_rss_mb, '.0f'):>9}"
            f"{_fmt(r.mean_round_s, '.3f'):>9}{_fmt(per_node, '.3f'):>9}"
            f"{'yes' if r.exact else 'NO':>7}  {note}"
        )
    if idle is not None:
        what = (
            f"{idle.idle_cpu_percent:.1f} % of one core"
            if idle.idle_cpu_percent is not None
            else f"not measured ({idle.status}{': ' + idle.error if idle.error else ''})"
        )
        rows.append(f"idle CPU, syft_flwr, {idle.n} datasites served: {what}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000, 5000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flower-sizes", type=int, nargs="*", default=[1000])
    parser.add_argument("--idle-size", type=int, default=1000, help="0: skip the idle run")
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args()

    top = Path(tempfile.mkdtemp(prefix="scale_"))  # short: Ray's socket paths live under it
    try:
        syft = []
        for n in args.sizes:
            syft.append(bench("syft_flwr", n, args.rounds, top, args.timeout))
            print(f"syft_flwr N={n}: {syft[-1].status}", flush=True)
        flower = []
        missing = _flower_available() if args.flower_sizes else ""
        for n in args.flower_sizes:
            if missing:
                flower.append(RunResult("flower", n, args.rounds, "unavailable", error=missing))
                continue
            flower.append(bench("flower", n, args.rounds, top, args.timeout))
            print(f"flower N={n}: {flower[-1].status}", flush=True)
        idle = None
        if args.idle_size:
            idle = bench("syft_flwr", args.idle_size, 1, top, args.timeout, args.idle_seconds)
    finally:
        shutil.rmtree(top, ignore_errors=True)

    report = {
        "rounds": args.rounds,
        "syft_flwr": [{**asdict(r), "mean_round_s": r.mean_round_s} for r in syft],
        "flower": [{**asdict(r), "mean_round_s": r.mean_round_s} for r in flower],
        "idle": None if idle is None else asdict(idle),
        "checks": _checks(syft, flower, idle),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(syft, flower, idle))
    print("targets:", ", ".join(f"{k}={v}" for k, v in report["checks"].items()))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, kind, project_dir, count, config_json = sys.argv
        run = _child_syft if kind == "syft" else _child_flower
        run(project_dir, int(count), json.loads(config_json))
    else:
        main()
