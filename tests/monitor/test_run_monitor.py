"""RunMonitor: the event lines and the Prometheus metrics of a sequence of run events."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from syft_flwr.events import (
    DatasiteMissing,
    Event,
    EventBus,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
    Subscriber,
    event_from_json,
)
from syft_flwr.monitor import (
    Heartbeat,
    RunMonitor,
    start_metrics_server,
    stop_metrics_server,
)
from syft_flwr.network.layout import Network
from tests.support import DATASITES

DO1, DO2 = DATASITES


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` from a real HTTP scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def play(subscriber: Subscriber | EventBus) -> None:
    publish = subscriber.publish if isinstance(subscriber, EventBus) else subscriber.on_event
    publish(RunStarted(77, "fed-analytics", (DO1, DO2)))
    # round 1: both answer
    publish(RoundStarted(1, (DO1, DO2)))
    publish(MessageSent(DO1, 1, 100))
    publish(MessageSent(DO2, 1, 120))
    publish(ReplyReceived(DO1, 1, 0.2, 1000, None))
    publish(ReplyReceived(DO2, 1, 0.4, 2000, None))
    publish(RoundFinished(1, (DO1, DO2), {}))
    # round 2: do1 answers with an error, do2 never answers
    publish(RoundStarted(2, (DO1, DO2)))
    publish(MessageSent(DO1, 2, 100))
    publish(MessageSent(DO2, 2, 120))
    publish(ReplyReceived(DO1, 2, 0.6, 50, "ValueError: boom"))
    publish(DatasiteMissing(DO2, 2, 5.0))
    publish(RoundFinished(2, (), {DO1: "ValueError: boom", DO2: "no reply within 5 s"}))
    publish(RunFinished(False, {DO1: "ValueError: boom", DO2: "no reply within 5 s"}))


def test_event_lines(tmp_path: Path):
    events = tmp_path / "runs" / "77" / "events.jsonl"
    play(RunMonitor(events))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["kind"] for e in lines] == [
        "run_start",
        "round_start", "message_sent", "message_sent", "reply", "reply", "round_end",
        "round_start", "message_sent", "message_sent", "reply", "missing", "round_end",
        "run_end",
    ]  # fmt: skip
    assert all(isinstance(e["ts"], float) for e in lines)
    assert [e["ts"] for e in lines] == sorted(e["ts"] for e in lines)
    assert lines[0] == {**lines[0], "run_id": 77, "app": "fed-analytics", "datasites": [DO1, DO2]}
    assert lines[4] == {
        **lines[4],
        "datasite": DO1,
        "round": 1,
        "latency_s": 0.2,
        "nbytes": 1000,
        "error": None,
    }
    assert lines[10]["error"] == "ValueError: boom"
    assert lines[11] == {**lines[11], "datasite": DO2, "round": 2, "waited_s": 5.0}
    assert lines[12]["failed"] == {DO1: "ValueError: boom", DO2: "no reply within 5 s"}
    assert lines[-1]["ok"] is False
    # the lines parse back into the events that were published
    events = [event_from_json(line) for line in events.read_text().splitlines()]
    assert [type(e) for e in events][:2] == [RunStarted, RoundStarted]
    assert events[4] == ReplyReceived(DO1, 1, 0.2, 1000, None, ts=lines[4]["ts"])


def test_metrics_over_http(network: Network, tmp_path: Path):
    monitor = RunMonitor(tmp_path / "events.jsonl", network=network)
    network.public_dir(DO2).mkdir(parents=True, exist_ok=True)  # do2 has a folder but no heartbeat
    server, thread = start_metrics_server(monitor.registry, 0)
    try:
        with Heartbeat(network, DO1, "datasite", interval=60):
            port = server.server_port
            before = scrape(port)
            assert before[("syft_flwr_datasite_online", (("datasite", DO1),))] == 1
            assert before[("syft_flwr_datasite_online", (("datasite", DO2),))] == 0
            assert ("syft_flwr_heartbeat_age_seconds", (("datasite", DO2),)) not in before
            assert 0 <= before[("syft_flwr_heartbeat_age_seconds", (("datasite", DO1),))] < 30

            play(monitor)
            m = scrape(port)
    finally:
        stop_metrics_server(server, thread)

    d1, d2 = (("datasite", DO1),), (("datasite", DO2),)
    assert m[("syft_flwr_rounds_completed", ())] == 2
    assert m[("syft_flwr_current_round", ())] == 2
    assert m[("syft_flwr_run_info", (("app", "fed-analytics"), ("run_id", "77")))] == 1
    assert m[("syft_flwr_run_finished", ())] == 1 and m[("syft_flwr_run_succeeded", ())] == 0
    assert m[("syft_flwr_messages_sent_total", d1)] == 2
    assert m[("syft_flwr_messages_sent_total", d2)] == 2
    assert m[("syft_flwr_sent_bytes_total", d2)] == 240
    assert m[("syft_flwr_replies_received_total", d1)] == 2
    assert m[("syft_flwr_replies_received_total", d2)] == 1
    assert m[("syft_flwr_received_bytes_total", d1)] == 1050
    assert m[("syft_flwr_reply_latency_seconds_count", d1)] == 2
    assert abs(m[("syft_flwr_reply_latency_seconds_sum", d1)] - 0.8) < 1e-9
    assert m[("syft_flwr_reply_latency_seconds_bucket", (("datasite", DO1), ("le", "0.25")))] == 1
    assert m[("syft_flwr_reply_latency_seconds_bucket", (("datasite", DO1), ("le", "1.0")))] == 2
    # each failure counted once, under the most precise kind
    assert m[("syft_flwr_failures_total", (("datasite", DO1), ("kind", "error")))] == 1
    assert m[("syft_flwr_failures_total", (("datasite", DO2), ("kind", "missing")))] == 1
    assert ("syft_flwr_failures_total", (("datasite", DO2), ("kind", "failed"))) not in m
    assert not thread.is_alive()  # the server shut down


def test_failed_without_earlier_event_counts_as_failed(tmp_path: Path):
    monitor = RunMonitor(tmp_path / "events.jsonl")
    monitor.on_event(RunStarted(1, "app", (DO1,)))
    monitor.on_event(RoundStarted(1, (DO1,)))
    monitor.on_event(RoundFinished(1, (), {DO1: "rejected the message"}))
    value = monitor.registry.get_sample_value(
        "syft_flwr_failures_total", {"datasite": DO1, "kind": "failed"}
    )
    assert value == 1
    assert monitor.registry.get_sample_value("syft_flwr_rounds_completed") == 1


def test_runs_have_their_own_registries(tmp_path: Path):
    """Two runs in one process: no clash, nothing in the global default registry."""
    a = RunMonitor(tmp_path / "a.jsonl")
    b = RunMonitor(tmp_path / "b.jsonl")
    for event in (
        RunStarted(1, "app", (DO1,)),
        RoundStarted(1, (DO1,)),
        RoundFinished(1, (DO1,), {}),
    ):
        a.on_event(event)
    assert a.registry.get_sample_value("syft_flwr_rounds_completed") == 1
    assert b.registry.get_sample_value("syft_flwr_rounds_completed") == 0
    assert REGISTRY.get_sample_value("syft_flwr_rounds_completed") is None


def test_the_bus_survives_a_failing_subscriber(tmp_path: Path):
    class Broken:
        def on_event(self, event: Event) -> None:
            if isinstance(event, RoundStarted):
                raise RuntimeError("subscriber bug")

    monitor = RunMonitor(tmp_path / "events.jsonl")
    bus = EventBus([Broken(), None, monitor])
    assert isinstance(monitor, Subscriber) and len(bus.subscribers) == 2
    play(bus)
    kinds = [json.loads(x)["kind"] for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert kinds.count("round_start") == 2 and kinds[-1] == "run_end"
