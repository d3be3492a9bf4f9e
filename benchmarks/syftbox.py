"""Round latency over a real SyftBox network, and the whole demo over it (a script, not a test).

    .venv/bin/python benchmarks/syftbox.py [--rounds 20] [--skip-demo]

A SyftBox server on 127.0.0.1 and three clients (ds, do1, do2), each with its own data folder;
the aggregator's DatasiteGrid sends a query to both data owners' DatasiteNodes and waits for
both replies, ``--rounds`` times. Per round (the slower data owner decides it):

- ``to DO``: from the send to the ClientApp being called at the data owner (the DS's client
  uploads, the DO's client downloads: a sync interval of each, ~1 s each way at most);
- ``DO work``: the ClientApp itself;
- ``to DS``: from the ClientApp's return to the grid holding both replies (the same two syncs);
- ``own work``: the same rounds on one local folder, no sync: what the toolkit itself costs.

Target: median round <= 2.5 s (the floor is the clients' 1 s sync interval on each leg). Then
it times ``syft-flwr demo --syftbox`` end to end. Prints a table and writes
benchmarks/results/syftbox.json. Needs ``make syftbox-env``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flwr.app import Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from syft_flwr.syftbox.env import unavailable_reason  # noqa: E402
from syft_flwr.utils import get_syftbox_dataset_path  # noqa: E402
from tests.syftbox.helpers import DOS, synced_federation  # noqa: E402
from tests.transport.helpers import federation  # noqa: E402

CALLS: dict[str, list[tuple[float, float]]] = {}
LOCK = threading.Lock()


def timed_app() -> ClientApp:
    """A query app that records when it is called and returns, per data owner."""
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        start = time.time()
        who = get_syftbox_dataset_path().name
        reply = Message(RecordDict({"stats": MetricRecord({"sum": 1.0})}), reply_to=msg)
        with LOCK:
            CALLS.setdefault(who, []).append((start, time.time()))
        return reply

    return app


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def over_syftbox(rounds: int) -> dict:
    CALLS.clear()
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        synced_federation(Path(tmp), app_factory=timed_app) as fed,
    ):
        fed.query()  # warm up: keys, message keys, first sync
        CALLS.clear()
        for _ in range(rounds):
            sent = time.time()
            replies = fed.query()
            done = time.time()
            assert len(replies) == 2 and not any(r.has_error() for r in replies)
            calls = {email: CALLS[email][-1] for email in DOS}
            last = max(calls.values(), key=lambda c: c[1])
            rows.append(
                {
                    "round": done - sent,
                    "to_do": last[0] - sent,
                    "do_work": last[1] - last[0],
                    "to_ds": done - last[1],
                }
            )
    return _summarise(rows)


def local_folder(rounds: int) -> dict:
    import numpy as np

    times = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        federation(Path(tmp), [[np.ones(10)]] * 2, [10, 20]) as fed,
    ):
        from tests.transport.helpers import query_message

        emails = list(fed.nodes)
        list(fed.grid.send_and_receive([query_message(fed.grid, e) for e in emails]))
        for _ in range(rounds):
            started = time.perf_counter()
            list(fed.grid.send_and_receive([query_message(fed.grid, e) for e in emails]))
            times.append(time.perf_counter() - started)
    return {"median_s": statistics.median(times), "p95_s": _pct(times, 0.95)}


def _summarise(rows: list[dict]) -> dict:
    out = {}
    for key in ("round", "to_do", "do_work", "to_ds"):
        values = [r[key] for r in rows]
        out[key] = {"median_s": statistics.median(values), "p95_s": _pct(values, 0.95)}
    out["rounds"] = len(rows)
    return out


def demo_time() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "syft_flwr.cli", "demo", "--syftbox", "--folder", tmp + "/d"],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"demo --syftbox failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    total = re.search(r"total time:\s+([\d.]+) s", proc.stdout)
    steps = re.findall(r"\[(\d)/7\] (.+)\n(?:.*\n)*?\s+done in ([\d.]+) s", proc.stdout)
    return {
        "wall_s": wall,
        "reported_total_s": float(total.group(1)) if total else None,
        "steps_s": {title: float(s) for _, title, s in steps},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"SyftBox is not installed: {reason}")
    result = {"syftbox": over_syftbox(args.rounds), "local": local_folder(args.rounds)}
    sb = result["syftbox"]
    print(f"\nper round over SyftBox, 2 data owners, {args.rounds} rounds (median / p95):")
    labels = {
        "round": "round",
        "to_do": "  sync to DO",
        "do_work": "  DO work",
        "to_ds": "  sync to DS",
    }
    for key, label in labels.items():
        print(f"  {label:<14} {sb[key]['median_s']:7.3f} s  {sb[key]['p95_s']:7.3f} s")
    loc = result["local"]
    print(
        f"  own work (same rounds, one folder): {loc['median_s'] * 1000:.1f} ms / "
        f"{loc['p95_s'] * 1000:.1f} ms"
    )
    verdict = "OK" if sb["round"]["median_s"] <= 2.5 else "OVER"
    print(f"  target median <= 2.5 s: {verdict}")
    if not args.skip_demo:
        result["demo"] = demo_time()
        print(
            f"\ndemo --syftbox: {result['demo']['wall_s']:.1f} s wall "
            f"(reported total {result['demo']['reported_total_s']} s)"
        )
        for title, secs in result["demo"]["steps_s"].items():
            print(f"  {secs:6.1f} s  {title}")
    out = REPO / "benchmarks" / "results" / "syftbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
