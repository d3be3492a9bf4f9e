"""A run's events as typed values, and the bus that hands them to subscribers.

``DatasiteGrid`` publishes one event per step of a run (all on the aggregator's side);
subscribers (the run report, the run monitor, the aggregator's heartbeat) implement one
method, :meth:`Subscriber.on_event`, and dispatch on the event's class. ``events.jsonl`` holds
the events as written by :func:`event_to_json` (each dataclass's fields plus ``kind`` and
``ts``); :func:`event_from_json` reads a line back.

Light on purpose: no flwr, no monitor, so the transport can import it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

from loguru import logger

_FLWR_REASON = re.compile(r"^<class '(?P<type>[^']+)'>:<'(?P<message>.*)'>$", re.DOTALL)
_OWN_REASON = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$", re.DOTALL)


@dataclass(frozen=True)
class ReplyError:
    """An error reply: the datasite's app raised (or the datasite refused the message)."""

    code: int
    reason: str

    @property
    def exception_type(self) -> str:
        """The exception's type name when the reason names one, else ''."""
        match = _FLWR_REASON.match(self.reason) or _OWN_REASON.match(self.reason)
        return match.group("type").rsplit(".", 1)[-1] if match else ""

    @property
    def message(self) -> str:
        match = _FLWR_REASON.match(self.reason) or _OWN_REASON.match(self.reason)
        return match.group("message") if match else self.reason


@dataclass(frozen=True)
class Event:
    """What every event has: ``kind`` (its name in events.jsonl) and ``ts`` (epoch seconds,
    when it was created)."""

    kind: ClassVar[str] = ""
    ts: float = field(default_factory=time.time, kw_only=True)

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> Event:
        """The event from its JSON fields (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_start"
    run_id: int
    app: str
    datasites: tuple[str, ...]


@dataclass(frozen=True)
class RoundStarted(Event):
    """A round's first exchange went out; ``timeout_s`` is how long it waits for replies."""

    kind: ClassVar[str] = "round_start"
    round: int
    datasites: tuple[str, ...]
    timeout_s: float = 0.0


@dataclass(frozen=True)
class MessageSent(Event):
    kind: ClassVar[str] = "message_sent"
    datasite: str
    round: int
    nbytes: int


@dataclass(frozen=True)
class ReplyReceived(Event):
    """A reply came in; ``error`` is the error reply's reason (None: a result)."""

    kind: ClassVar[str] = "reply"
    datasite: str
    round: int
    latency_s: float
    nbytes: int
    error: str | None = None


@dataclass(frozen=True)
class DatasiteMissing(Event):
    """No reply within the timeout (``waited_s`` is 0 when the message could not be sent)."""

    kind: ClassVar[str] = "missing"
    datasite: str
    round: int
    waited_s: float


@dataclass(frozen=True)
class RoundFinished(Event):
    """One exchange (a ``send_and_receive`` call) is over.

    ``round`` is the server round, or the exchange's number when the messages carry none
    (then ``server_round`` is None). ``failed`` gives every failed datasite's reason;
    ``errors`` and ``missing`` say which failures were error replies and which silences.
    """

    kind: ClassVar[str] = "round_end"
    round: int
    answered: tuple[str, ...]
    failed: dict[str, str]
    exchange: int = 0
    server_round: int | None = None
    message_types: tuple[str, ...] = ()
    sent_to: tuple[str, ...] = ()
    errors: dict[str, ReplyError] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    timeout_s: float = 0.0
    duration_s: float = 0.0

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> Event:
        errors = values.get("errors") or {}
        values = {**values, "errors": {e: ReplyError(**v) for e, v in errors.items()}}
        return super().from_fields(values)


@dataclass(frozen=True)
class RoundMetrics(Event):
    """The strategy's aggregated metrics of server round ``round``, as the ServerApp reports
    them (``DatasiteGrid.report_metrics``), e.g. ``{"loss": .., "accuracy": .., "auc": ..}``.
    Round 0 is the initial model's evaluation."""

    kind: ClassVar[str] = "round_metrics"
    round: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class FileRefused(Event):
    """A file in the aggregator's inbox was refused; ``refusal`` is one of
    :data:`syft_flwr.transport.errors.KINDS`, ``sender`` the sender it claimed (if known).
    ``set_aside`` is False when it could not be moved to quarantine."""

    kind: ClassVar[str] = "refused"
    path: str
    reason: str
    refusal: str = "malformed"
    sender: str | None = None
    set_aside: bool = True


@dataclass(frozen=True)
class LateReply(Event):
    """A genuine reply that came too late (or answers another run), ignored."""

    kind: ClassVar[str] = "late_reply"
    datasite: str
    why: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_end"
    ok: bool
    failures: dict[str, str]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        RoundStarted,
        MessageSent,
        ReplyReceived,
        DatasiteMissing,
        RoundFinished,
        RoundMetrics,
        FileRefused,
        LateReply,
        RunFinished,
    )
}


def count_rounds(server_rounds: Iterable[int | None]) -> int:
    """A run's rounds, the one count every view shows, from the ``server_round`` of each
    finished exchange (``RoundFinished``): the distinct server rounds >= 1. Exchanges without
    a round number (a statistics query before training) and round 0 (the initial model's
    evaluation) are not rounds, unless no exchange of the run carries a number: then each
    exchange is one."""
    rounds = list(server_rounds)
    numbered = {n for n in rounds if n is not None}
    if not numbered:
        return len(rounds)
    return len({n for n in numbered if n >= 1})


def clean_metrics(values: Any) -> dict[str, float]:
    """The finite numbers of ``values`` (a MetricRecord or a dict), as floats; lists, text,
    booleans, NaN and infinities are left out."""
    out: dict[str, float] = {}
    for key, value in dict(values or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value == value and abs(value) != float("inf"):
            out[str(key)] = float(value)
    return out


def event_to_json(event: Event) -> str:
    """One events.jsonl line (without its newline): ``ts``, ``kind``, then the fields."""
    values = asdict(event)
    values.pop("ts")
    return json.dumps({"ts": event.ts, "kind": event.kind, **values}, default=str)


def event_from_json(line: str | bytes) -> Event:
    """The event of an events.jsonl line; fields it does not know are ignored.

    Raises ValueError for a line that is not a known event.
    """
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("an event line must be a JSON object")
    cls = EVENT_TYPES.get(data.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event kind {data.get('kind')!r}")
    known = {f.name for f in fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    if not isinstance(values.get("ts"), int | float):
        raise ValueError(f"a {cls.kind} event without a numeric ts")
    try:
        return cls.from_fields(values)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"malformed {cls.kind} event: {exc}") from None


@runtime_checkable
class Subscriber(Protocol):
    """Receives every event of a run; dispatches on its class and ignores the rest."""

    def on_event(self, event: Event) -> None: ...


class EventBus:
    """Hands each published event to every subscriber, in order. A subscriber that raises is
    logged and skipped: monitoring never breaks a run."""

    def __init__(self, subscribers: Iterable[Subscriber | None] = ()) -> None:
        self._lock = threading.Lock()
        self._subscribers = tuple(s for s in subscribers if s is not None)

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return self._subscribers

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

    def publish(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber.on_event(event)
            except Exception as exc:  # monitoring must never stop the run
                logger.warning(
                    f"subscriber {type(subscriber).__name__} failed on {event.kind}: {exc!r}"
                )
