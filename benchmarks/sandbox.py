"""The sandbox's cost (a script, not a test).

    .venv/bin/python benchmarks/sandbox.py [--starts N] [--messages N]

- **Start**: what the sandbox adds to starting a job's ClientApp (medians of ``--starts``).
  ``bwrap`` itself: ``python -c pass`` in the sandbox against the same outside. The worker:
  a :class:`SandboxedClientApp` of the tiny app until it says the app loaded, against loading
  the app in a fresh Python outside (the sandbox's own cost: the target). A job's start, end
  to end, as ``runtime._serve`` does it: a fresh Python until it can serve (sandboxed: the
  node has loaded the transport, the worker may still be loading) and until the ClientApp is
  ready, in process against sandboxed. A sandboxed job imports flwr twice (node and worker,
  at the same time), so "ready" costs ~0 with a free core and up to one import of flwr
  without.
- **Per message**: a round trip through the pipe (request and reply serialised, framed,
  parsed) against calling the ClientApp in process with the same ``answer`` (mean over
  ``--messages``), for a small query and for a 1 MB array.

Targets: start <= 150 ms (bwrap's own cost), <= 0.5 ms extra per small message. Prints a
table and writes benchmarks/results/sandbox.json.
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

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType, RecordDict

from syft_flwr.apps import load_client_app
from syft_flwr.sandbox import DEFAULT_LIMITS, SandboxSpec, bwrap_argv
from syft_flwr.sandbox.client import SandboxedClientApp
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.clientapp import answer

REPO = Path(__file__).resolve().parents[1]
TINY_APP = REPO / "tests" / "fixtures" / "tiny_app"
RESULTS = Path(__file__).resolve().parent / "results" / "sandbox.json"
JOB_START = """
import sys, time
from pathlib import Path

started = time.perf_counter()
mode, app, spec = sys.argv[1:4]
if mode == "sandbox":
    from syft_flwr.sandbox.client import SandboxedClientApp
    from syft_flwr.sandbox.limits import SANDBOX_ENV, SandboxSpec

    client = SandboxedClientApp(Path(app), SandboxSpec.from_env({SANDBOX_ENV: spec}), wait=False)
    import syft_flwr.transport

    serving = time.perf_counter()
    client.wait_ready()
    ready = time.perf_counter()
    client.close()
else:
    import syft_flwr.transport
    from syft_flwr.apps import load_client_app

    load_client_app(Path(app))
    serving = ready = time.perf_counter()
print(serving - started, ready - started)
"""
ECHO_APP = """
from flwr.app import Message
from flwr.clientapp import ClientApp

app = ClientApp()


@app.query()
def query(msg, context):
    return Message(msg.content, reply_to=msg)
"""


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _job_start(argv: list[str], n: int) -> tuple[float, float]:
    """Medians of (seconds to serving, seconds to the ClientApp ready) the script prints."""
    runs = []
    for _ in range(n):
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        runs.append(tuple(float(x) for x in out.split()[-2:]))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _time(argv: list[str], n: int) -> float:
    runs = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(argv, check=True)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def _spec(tmp: Path, data: Path) -> SandboxSpec:
    return SandboxSpec(
        data_dir=str(data),
        output_dir=str(tmp / "out"),
        scratch_dir=str(tmp / "scratch"),
        limits=DEFAULT_LIMITS,
        report=str(tmp / "report.json"),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp / "scratch")},
    )


def bench_start(tmp: Path, data: Path, n: int) -> dict[str, float]:
    (tmp / "scratch").mkdir(exist_ok=True)
    plain = [sys.executable, "-c", "pass"]
    boxed = bwrap_argv(plain, read_only=[data], writable=[tmp / "scratch"], env={}, workdir=data)
    outside, inside = _time(plain, n), _time(boxed, n)
    load_app = f"import syft_flwr.apps as a; a.load_client_app({str(TINY_APP)!r})"
    load = [sys.executable, "-c", load_app]
    app_outside = _time(load, max(5, n // 2))
    ready = []
    for _ in range(max(5, n // 2)):
        started = time.perf_counter()
        with SandboxedClientApp(TINY_APP, _spec(tmp, data)):
            ready.append(time.perf_counter() - started)
    app_inside = statistics.median(ready)
    spec = _spec(tmp, data).to_env()
    job = [sys.executable, "-c", JOB_START]
    _, in_process = _job_start([*job, "in-process", str(TINY_APP), spec], max(5, n // 2))
    serving, sandboxed = _job_start([*job, "sandbox", str(TINY_APP), spec], max(5, n // 2))
    return {
        "python_outside_ms": _ms(outside),
        "python_in_bwrap_ms": _ms(inside),
        "bwrap_cost_ms": _ms(inside - outside),
        "clientapp_load_outside_ms": _ms(app_outside),
        "clientapp_ready_in_sandbox_ms": _ms(app_inside),
        "clientapp_start_cost_ms": _ms(app_inside - app_outside),
        "job_ready_in_process_ms": _ms(in_process),
        "job_serving_sandboxed_ms": _ms(serving),
        "job_serving_cost_ms": _ms(serving - in_process),
        "job_ready_sandboxed_ms": _ms(sandboxed),
        "job_ready_cost_ms": _ms(sandboxed - in_process),
    }


def _message(content: RecordDict) -> Message:
    flwr_compat.ensure_task_identity(1)
    message = Message(content, dst_node_id=5, message_type=MessageType.QUERY)
    flwr_compat.set_message_id(message, "m" * 64)
    return message


def bench_messages(tmp: Path, data: Path, n: int) -> dict[str, float]:
    echo = tmp / "echo_app"
    shutil.copytree(TINY_APP, echo)
    (echo / "tiny_app" / "client_app.py").write_text(ECHO_APP)
    context = Context(
        run_id=1, node_id=5, node_config={"data-path": str(data)}, state=RecordDict(),
        run_config={},
    )  # fmt: skip
    payloads = {
        "small": RecordDict(),
        "1MB": RecordDict({"w": ArrayRecord([np.zeros(1024 * 1024 // 8)])}),
    }
    local = load_client_app(echo)
    out: dict[str, float] = {}
    with SandboxedClientApp(echo, _spec(tmp, data)) as boxed:
        for name, content in payloads.items():
            count = n if name == "small" else max(20, n // 20)
            timings = {}
            for label, app in (("in_process", local), ("sandbox", boxed)):
                message = _message(content)
                for _ in range(20):  # warm up
                    answer(app, message, context, node_id=5, data_path=data)
                started = time.perf_counter()
                for _ in range(count):
                    reply, raised = answer(app, message, context, node_id=5, data_path=data)
                    assert raised is None, raised
                timings[label] = (time.perf_counter() - started) / count
            out[f"{name}_in_process_ms"] = _ms(timings["in_process"])
            out[f"{name}_sandbox_ms"] = _ms(timings["sandbox"])
            out[f"{name}_extra_ms"] = _ms(timings["sandbox"] - timings["in_process"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = tmp / "data"
        data.mkdir()
        (data / "values.txt").write_text("1\n2\n3\n")
        results = {
            **bench_start(tmp, data, args.starts),
            **bench_messages(tmp, data, args.messages),
        }
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value:>9.3f}")
    ok = results["clientapp_start_cost_ms"] <= 150 and results["small_extra_ms"] <= 0.5
    verdict = "met" if ok else "MISSED"
    print(f"targets (sandbox start <= 150 ms, small message <= 0.5 ms extra): {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
