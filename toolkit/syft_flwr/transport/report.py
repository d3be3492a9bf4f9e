"""What happened on the wire: per ``send_and_receive``, who answered, who failed and why.

:class:`RunReport` is a subscriber of the grid's events (:mod:`syft_flwr.events`): it builds
its rounds from ``RoundFinished`` and its warnings from ``FileRefused`` and ``LateReply``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field

from syft_flwr.events import (
    Event,
    FileRefused,
    LateReply,
    ReplyError,
    RoundFinished,
    RoundMetrics,
    count_rounds,
)
from syft_flwr.utils import plural

__all__ = [
    "QuarantinedFile",
    "ReplyError",
    "RoundReport",
    "RunReport",
    "count_refusals",
]


@dataclass
class RoundReport:
    """One ``send_and_receive`` call (a round's train or evaluate step)."""

    index: int
    message_types: list[str]
    server_round: int | None
    sent_to: list[str]
    answered: list[str] = field(default_factory=list)
    errors: dict[str, ReplyError] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    timeout: float = 0.0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.missing

    def describe(self) -> str:
        kind = "/".join(self.message_types) or "messages"
        where = f"round {self.server_round} " if self.server_round is not None else ""
        parts = [f"{where}{kind}: {len(self.answered)}/{len(self.sent_to)} answered"]
        for email, err in self.errors.items():
            parts.append(f"{email} failed ({err.reason})")
        if self.missing:
            parts.append(f"no answer within {self.timeout:g} s from {', '.join(self.missing)}")
        return "; ".join(parts)

    @classmethod
    def of(cls, event: RoundFinished) -> RoundReport:
        """The report of the exchange ``event`` ends."""
        return cls(
            index=event.exchange,
            message_types=list(event.message_types),
            server_round=event.server_round,
            sent_to=list(event.sent_to),
            answered=list(event.answered),
            errors=dict(event.errors),
            missing=list(event.missing),
            timeout=event.timeout_s,
            duration=event.duration_s,
        )


@dataclass(frozen=True)
class QuarantinedFile:
    """A file a party refused and set aside; ``kind`` is one of
    :data:`syft_flwr.transport.errors.KINDS`, ``sender`` the sender it claimed (if known).
    ``set_aside`` is False for a file that could not be moved: it is still at ``path``, in
    the inbox, and its reader skips it from then on."""

    path: str
    reason: str
    kind: str = "malformed"
    sender: str | None = None
    set_aside: bool = True


def count_refusals(files: list[QuarantinedFile]) -> dict[str, int]:
    """How many refused files of each kind."""
    return dict(Counter(q.kind for q in files))


@dataclass
class RunReport:
    """Everything the grid saw during a run, and its verdict.

    - ``completed``: every datasite answered every exchange. False as soon as one sent an
      error reply or did not answer -- a failure, listed by :meth:`failures`.
    - ``ok``: plain success, ``completed`` and no file refused (quarantined).

    A refused file that did not stop any datasite from answering (a forged, replayed or
    corrupt file beside the genuine replies) is a warning, not a failure: the run's results
    are complete. :meth:`summary` then starts with ``OK WITH WARNINGS`` and lists the files,
    and ``main.py --active`` exits 0. If a refused file was a datasite's only reply, that
    datasite did not answer and the run failed (``FAILED``, a non-zero exit).
    """

    rounds: list[RoundReport] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    late_replies: list[str] = field(default_factory=list)
    #: server round -> the metrics the ServerApp reported for it (RoundMetrics)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def completed(self) -> bool:
        """Every datasite answered every exchange (refused files aside: they are warnings)."""
        return all(r.ok for r in self.rounds)

    @property
    def ok(self) -> bool:
        """Plain success: every datasite answered every exchange and no file was refused."""
        return self.completed and not self.quarantined

    @property
    def verdict(self) -> str:
        """``OK``, ``OK WITH WARNINGS`` (completed, but files were refused) or ``FAILED``."""
        if not self.completed:
            return "FAILED"
        return "OK" if self.ok else "OK WITH WARNINGS"

    @property
    def failed_datasites(self) -> list[str]:
        """Datasites that sent an error reply or did not answer at least once."""
        failed: dict[str, None] = {}
        for r in self.rounds:
            failed.update(dict.fromkeys(r.errors))
            failed.update(dict.fromkeys(r.missing))
        return list(failed)

    @property
    def server_rounds(self) -> int:
        """The run's rounds, counted as every view counts them (:func:`count_rounds`)."""
        return count_rounds(r.server_round for r in self.rounds)

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics of the last round that reported any ({} if none did)."""
        return dict(self.metrics[max(self.metrics)]) if self.metrics else {}

    def failures(self) -> dict[str, str]:
        """Each datasite that failed at least once, with its first failure in words."""
        found: dict[str, str] = {}
        for r in self.rounds:
            where = f" in round {r.server_round}" if r.server_round is not None else ""
            for email, err in r.errors.items():
                kind = err.exception_type or "an error"
                found.setdefault(email, f"raised {kind}{where}: {err.message}")
            for email in r.missing:
                found.setdefault(email, f"did not answer within {r.timeout:g} s{where}")
        return found

    def participants(self) -> dict[int, list[str]]:
        """Server round -> the datasites that answered every exchange of that round."""
        answered: dict[int, set[str]] = {}
        failed: dict[int, set[str]] = {}
        for index, r in enumerate(self.rounds, start=1):
            key = r.server_round if r.server_round is not None else index
            answered.setdefault(key, set()).update(r.answered)
            failed.setdefault(key, set()).update(r.errors, r.missing)
        return {k: sorted(v - failed[k]) for k, v in sorted(answered.items())}

    def on_event(self, event: Event) -> None:
        """Record the events that make the report (a subscriber of the grid's events)."""
        match event:
            case RoundFinished():
                self.add_round(RoundReport.of(event))
            case RoundMetrics():
                with self._lock:
                    self.metrics[event.round] = dict(event.metrics)
            case FileRefused():
                self.add_quarantined(
                    event.path,
                    event.reason,
                    event.refusal,
                    event.sender,
                    set_aside=event.set_aside,
                )
            case LateReply():
                self.add_late(event.datasite)

    def add_round(self, report: RoundReport) -> None:
        with self._lock:
            self.rounds.append(report)

    @property
    def refusals(self) -> dict[str, int]:
        """Refused (quarantined) files by kind, e.g. ``{"bad-mac": 1}``."""
        return count_refusals(self.quarantined)

    def add_quarantined(
        self,
        path: str,
        reason: str,
        kind: str = "malformed",
        sender: str | None = None,
        *,
        set_aside: bool = True,
    ) -> None:
        with self._lock:
            self.quarantined.append(QuarantinedFile(path, reason, kind, sender, set_aside))

    def add_late(self, email: str) -> None:
        with self._lock:
            self.late_replies.append(email)

    def summary(self) -> str:
        lines = [f"{self.verdict}: {plural(len(self.rounds), 'exchange')}"]
        lines += [f"  {r.describe()}" for r in self.rounds]
        lines += [f"  refused ({q.kind}) {q.path}: {q.reason}" for q in self.quarantined]
        if self.late_replies:
            lines.append(f"  late replies (ignored) from {', '.join(self.late_replies)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        rounds = []
        for r in self.rounds:
            d = asdict(r)
            d["errors"] = {
                email: {**asdict(e), "exception_type": e.exception_type, "message": e.message}
                for email, e in r.errors.items()
            }
            d["ok"] = r.ok
            rounds.append(d)
        return {
            "ok": self.ok,
            "completed": self.completed,
            "verdict": self.verdict,
            "rounds": rounds,
            "quarantined": [asdict(q) for q in self.quarantined],
            "refusals": self.refusals,
            "late_replies": list(self.late_replies),
            "failed_datasites": self.failed_datasites,
            "server_rounds": self.server_rounds,
            "metrics": {str(k): v for k, v in sorted(self.metrics.items())},
        }
