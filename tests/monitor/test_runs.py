"""Run registrations and summaries; waiting for datasites before round 1."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from syft_flwr.crypto import ensure_keys
from syft_flwr.events import RoundFinished, RoundStarted, RunFinished, RunStarted
from syft_flwr.monitor import (
    Heartbeat,
    RunMonitor,
    get_run,
    list_runs,
    monitor_run,
    read_events,
    register_run,
    run_events_path,
    wait_for_datasites,
)
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from tests.monitor.producer import LiveProducer
from tests.support import AGGREGATOR, DATASITES

DO1, DO2 = DATASITES


def test_list_runs_summarises_a_run(network: Network, tmp_path: Path):
    producer = LiveProducer(
        network, tmp_path / "project", rounds=3, round_delay=0.0, run_id=11, fail={2: DO2}
    )
    producer.start()
    producer.wait()
    producer.stop()

    (run,) = list_runs(network)
    assert run.run_id == "11" and run.app_name == "fed-demo" and run.aggregator == AGGREGATOR
    assert run.status == "failed" and run.ok is False
    assert run.failures == {DO2: "missed a round"}
    assert run.rounds_completed == 3 and run.current_round == 3
    assert run.datasites == [DO1, DO2]
    assert [r.round for r in run.rounds] == [1, 2, 3]
    assert run.rounds[0].answered == [DO1, DO2] and run.rounds[0].failed == {}
    assert run.rounds[1].answered == [DO1]
    assert run.rounds[1].failed == {DO2: "no reply within the timeout"}
    assert run.rounds[1].latency_s == {DO1: pytest.approx(0.05)}
    assert all(r.finished and r.duration_s >= 0 for r in run.rounds)
    s1, s2 = run.stats[DO1], run.stats[DO2]
    assert (s1.messages_sent, s1.replies, s1.missing) == (3, 3, 0)
    assert (s2.messages_sent, s2.replies, s2.missing) == (3, 2, 1)
    assert s1.mean_latency_s == pytest.approx(0.05) and s2.last_latency_s == pytest.approx(0.1)
    assert s1.bytes_sent == 3000 and s2.bytes_received == 2 * 501
    assert run.started_at <= run.finished_at
    assert run.events_path == run_events_path(tmp_path / "project", 11).resolve()

    detail = get_run(network, "11").to_dict()
    assert detail["rounds_completed"] == 3 and detail["status"] == "failed"
    assert detail["rounds"][1]["failed"] == {DO2: "no reply within the timeout"}
    assert detail["datasite_stats"][DO1]["mean_latency_s"] == pytest.approx(0.05)
    json.dumps(detail)  # JSON-ready
    assert get_run(network, "12") is None and get_run(network, "../11") is None


def _registered(network: Network, tmp_path: Path, run_id: int) -> RunMonitor:
    events = run_events_path(tmp_path / f"p{run_id}", run_id)
    register_run(network, AGGREGATOR, run_id, "app", tmp_path / f"p{run_id}", events)
    return RunMonitor(events)


def test_status_running_completed_interrupted(network: Network, tmp_path: Path):
    _registered(network, tmp_path, 1)  # registered, nothing happened yet
    running = _registered(network, tmp_path, 2)
    done = _registered(network, tmp_path, 3)
    running.on_event(RunStarted(2, "app", (DO1,)))
    running.on_event(RoundStarted(1, (DO1,)))
    done.on_event(RunStarted(3, "app", (DO1,)))
    done.on_event(RoundStarted(1, (DO1,)))
    done.on_event(RoundFinished(1, (DO1,), {}))
    done.on_event(RunFinished(True, {}))

    statuses = {r.run_id: r.status for r in list_runs(network)}
    assert statuses == {"1": "starting", "2": "running", "3": "completed"}
    assert [r.run_id for r in list_runs(network)][0] == "3"  # newest first

    # the aggregator's heartbeat went offline without a run_end: the run was interrupted
    ensure_keys(network, AGGREGATOR, durable=False)
    with Heartbeat(network, AGGREGATOR, "aggregator", interval=60):
        assert get_run(network, 2).status == "running"
    assert get_run(network, 2).status == "interrupted"
    assert get_run(network, 3).status == "completed"
    assert list_runs(network, aggregator=DO1) == []


def test_events_are_read_incrementally(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    start = '{"ts": 1.0, "kind": "run_start", "run_id": 1, "app": "a", "datasites": []}\n'
    path.write_text(start + '{"ts": 2.0, "ki')
    assert [e.kind for e in read_events(path)] == ["run_start"]  # half a line waits
    with path.open("a") as fh:
        fh.write('nd": "round_start", "round": 1, "datasites": ["x@y.org"]}\nnot json\n')
    assert read_events(path) == [
        RunStarted(1, "a", (), ts=1.0),
        RoundStarted(1, ("x@y.org",), ts=2.0),
    ]
    path.write_text('{"ts": 3.0, "kind": "run_end", "ok": true, "failures": {}}\n')
    assert [e.kind for e in read_events(path)] == ["run_end"]  # rewritten: start over


def test_lines_that_are_not_events_are_skipped(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"ts": 1.0, "kind": "run_end"}\n'  # a field missing
        '{"ts": 2.0, "kind": "from_the_future", "x": 1}\n'  # a kind this version does not know
        '{"kind": "run_end", "ok": true, "failures": {}}\n'  # no ts
        "[1, 2]\n"
        '{"ts": 3.0, "kind": "run_end", "ok": true, "failures": {}, "extra": 1}\n'
    )
    assert read_events(path) == [RunFinished(True, {}, ts=3.0)]


def test_bad_registration_is_skipped(network: Network, tmp_path: Path):
    _registered(network, tmp_path, 5)
    atomic_write_json(network.private_dir(AGGREGATOR) / "runs" / "6.json", {"run_id": "6"})
    assert [r.run_id for r in list_runs(network)] == ["5"]


def test_wait_for_datasites_succeeds_when_heartbeats_appear(network: Network):
    lines: list[str] = []
    started = threading.Event()
    hb1 = Heartbeat(network, DO1, "datasite", interval=0.1).start()
    hb2 = Heartbeat(network, DO2, "datasite", interval=0.1)

    def late() -> None:
        started.wait(10)
        time.sleep(0.3)
        hb2.start()

    thread = threading.Thread(target=late, daemon=True)
    thread.start()

    def progress(line: str) -> None:
        lines.append(line)
        started.set()

    try:
        wait_for_datasites(network, [DO1, DO2], timeout=20, progress=progress)
    finally:
        thread.join(10)
        hb1.stop()
        hb2.stop()
    assert lines[0] == f"waiting for 1/2 datasites: {DO2} (offline, no heartbeat yet)"
    assert lines[-1] == "all 2 datasites are online"


def test_wait_for_datasites_times_out_naming_the_offline(network: Network):
    lines: list[str] = []
    with Heartbeat(network, DO1, "datasite", interval=0.1), pytest.raises(TimeoutError) as info:
        wait_for_datasites(network, [DO1, DO2], timeout=0.5, progress=lines.append)
    message = str(info.value)
    assert "1 of 2 datasites still offline" in message and DO2 in message and DO1 not in message
    assert lines == [f"waiting for 1/2 datasites: {DO2} (offline, no heartbeat yet)"]


def test_wait_for_datasites_is_not_fooled_by_a_data_owners_session(network: Network):
    """An open admin session says its owner is online, but only the job serves the app."""
    lines: list[str] = []
    with (
        Heartbeat(network, DO1, "datasite", interval=0.1),
        Heartbeat(network, DO2, "data owner", interval=0.1),
        pytest.raises(TimeoutError) as info,
    ):
        wait_for_datasites(network, [DO1, DO2], timeout=0.5, progress=lines.append)
    assert DO2 in str(info.value) and DO1 not in str(info.value)
    assert lines == [
        f"waiting for 1/2 datasites: {DO2} (online as data owner, not serving the app yet)"
    ]
    with Heartbeat(network, DO2, "data owner", interval=0.1):  # any role, if asked
        wait_for_datasites(network, [DO2], timeout=5, progress=None, role=None)


def test_monitor_run_records_registers_and_serves(network: Network, tmp_path: Path):
    import urllib.request

    monitor = monitor_run(
        network, AGGREGATOR, 31, "fed-analytics", tmp_path / "proj", metrics_port=0
    )
    try:
        assert monitor.events_path == (tmp_path / "proj" / "runs" / "31" / "events.jsonl")
        assert monitor.metrics_port
        monitor.on_event(RunStarted(31, "fed-analytics", (DO1,)))
        url = f"http://127.0.0.1:{monitor.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert 'syft_flwr_run_info{app="fed-analytics",run_id="31"} 1.0' in resp.read().decode()
        (run,) = list_runs(network)
        assert (run.run_id, run.status, run.datasites) == ("31", "running", [DO1])
    finally:
        monitor.close()
    assert monitor.metrics_port is None
