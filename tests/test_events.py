"""Run events: their events.jsonl lines, reading them back, and the bus that delivers them."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from loguru import logger

from syft_flwr.events import (
    EVENT_TYPES,
    DatasiteMissing,
    Event,
    EventBus,
    FileRefused,
    LateReply,
    MessageSent,
    ReplyError,
    ReplyReceived,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
    Subscriber,
    event_from_json,
    event_to_json,
)
from tests.support import DATASITES

DO1, DO2 = DATASITES

EXAMPLES: list[Event] = [
    RunStarted(7, "fed-analytics", (DO1, DO2)),
    RoundStarted(1, (DO1, DO2)),
    MessageSent(DO1, 1, 100),
    ReplyReceived(DO1, 1, 0.25, 900, None),
    ReplyReceived(DO2, 1, 0.5, 80, "ValueError: boom"),
    DatasiteMissing(DO2, 2, 5.0),
    RoundFinished(
        2,
        (DO1,),
        {DO2: "ValueError: boom"},
        exchange=3,
        server_round=2,
        message_types=("train",),
        sent_to=(DO1, DO2),
        errors={DO2: ReplyError(0, "ValueError: boom")},
        timeout_s=5.0,
        duration_s=0.75,
    ),
    FileRefused("/inbox/x.msg", "bad MAC", "bad-mac", DO2, set_aside=False),
    LateReply(DO2, "it timed out"),
    RunFinished(False, {DO2: "ValueError: boom"}),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_event_survives_its_json_line(event: Event) -> None:
    line = event_to_json(event)
    assert "\n" not in line
    data = json.loads(line)
    assert list(data)[:2] == ["ts", "kind"] and data["kind"] == event.kind
    assert event_from_json(line) == event
    assert event_from_json(line.encode()) == event


def test_the_kinds_are_those_events_jsonl_has_always_used() -> None:
    assert {cls.__name__: kind for kind, cls in EVENT_TYPES.items()} == {
        "RunStarted": "run_start",
        "RoundStarted": "round_start",
        "MessageSent": "message_sent",
        "ReplyReceived": "reply",
        "DatasiteMissing": "missing",
        "RoundFinished": "round_end",
        "RoundMetrics": "round_metrics",
        "FileRefused": "refused",
        "LateReply": "late_reply",
        "RunFinished": "run_end",
    }


def test_the_line_names_its_fields_as_readers_expect() -> None:
    reply = json.loads(event_to_json(ReplyReceived(DO1, 1, 0.25, 900, None, ts=12.5)))
    assert reply == {
        "ts": 12.5,
        "kind": "reply",
        "datasite": DO1,
        "round": 1,
        "latency_s": 0.25,
        "nbytes": 900,
        "error": None,
    }
    end = json.loads(event_to_json(EXAMPLES[6]))
    assert end["errors"] == {DO2: {"code": 0, "reason": "ValueError: boom"}}
    assert end["answered"] == [DO1] and end["failed"] == {DO2: "ValueError: boom"}


def test_events_are_frozen_and_stamped() -> None:
    event = MessageSent(DO1, 1, 100)
    assert event.ts > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.round = 2  # type: ignore[misc]


def test_a_round_end_written_before_the_report_fields_still_reads() -> None:
    line = '{"ts": 1.0, "kind": "round_end", "round": 1, "answered": ["a@x.org"], "failed": {}}'
    assert event_from_json(line) == RoundFinished(1, ("a@x.org",), {}, ts=1.0)


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1]",
        '{"ts": 1.0, "kind": "nope"}',
        '{"kind": "run_end", "ok": true, "failures": {}}',
        '{"ts": "soon", "kind": "run_end", "ok": true, "failures": {}}',
        '{"ts": 1.0, "kind": "run_end", "ok": true}',
    ],
)
def test_a_line_that_is_not_an_event_is_a_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        event_from_json(line)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


class Broken:
    def on_event(self, event: Event) -> None:
        raise RuntimeError("subscriber bug")


def test_the_bus_delivers_in_order_and_survives_a_failing_subscriber() -> None:
    first, last, lines = Recorder(), Recorder(), []
    bus = EventBus([first, Broken(), None, last])
    assert isinstance(first, Subscriber) and len(bus.subscribers) == 3
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        for event in EXAMPLES:
            bus.publish(event)
    finally:
        logger.remove(sink)
    assert first.events == EXAMPLES and last.events == EXAMPLES
    assert sum("subscriber Broken failed on run_start" in line for line in lines) == 1


def test_subscribe_and_unsubscribe() -> None:
    a, b = Recorder(), Recorder()
    bus = EventBus([a])
    bus.subscribe(b)
    bus.publish(EXAMPLES[0])
    bus.unsubscribe(a)
    bus.publish(EXAMPLES[1])
    assert a.events == EXAMPLES[:1] and b.events == EXAMPLES[:2]


def test_importing_the_events_is_light() -> None:
    code = (
        "import sys, syft_flwr.events; "
        "print(sorted(m for m in sys.modules if m.startswith(('flwr', 'prometheus', "
        "'syft_flwr.monitor', 'syft_flwr.transport'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
