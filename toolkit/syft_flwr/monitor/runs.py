"""Where runs live and what they did.

A run writes ``<project>/runs/<run_id>/events.jsonl`` next to its outputs (see
:mod:`syft_flwr.monitor.run_monitor`) and registers itself in the aggregator's private folder,
``private/<aggregator>/runs/<run_id>.json``. :func:`list_runs` reads those registrations and
summarises each events file; events files are read incrementally (they only grow), so polling
them every second stays cheap.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.events import (
    DatasiteMissing,
    Event,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundMetrics,
    RoundStarted,
    RunFinished,
    RunStarted,
    count_rounds,
    event_from_json,
)
from syft_flwr.monitor.heartbeat import utc_iso
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, read_participant
from syft_flwr.network.atomic import atomic_write_json, read_json
from syft_flwr.network.layout import Network, validate_email, validate_name

RUNS_FOLDER = "runs"
EVENTS_FILE = "events.jsonl"
FIGURES_FOLDER = "figures"


def run_dir(project_dir: Path, run_id: int | str) -> Path:
    """``<project>/runs/<run_id>``: the run's events file lives here, next to its outputs."""
    return Path(project_dir) / RUNS_FOLDER / validate_name(str(run_id), "run id")


def run_events_path(project_dir: Path, run_id: int | str) -> Path:
    return run_dir(project_dir, run_id) / EVENTS_FILE


def register_run(
    network: Network,
    aggregator_email: str,
    run_id: int | str,
    app_name: str,
    project_dir: Path,
    events_path: Path,
) -> Path:
    """Record where run ``run_id`` writes its events; returns the registration file."""
    validate_email(aggregator_email)
    run_key = validate_name(str(run_id), "run id")
    project_dir = Path(project_dir).resolve()
    path = network.run_registration_path(aggregator_email, run_key)
    now = time.time()
    atomic_write_json(
        path,
        {
            "run_id": run_key,
            "app_name": app_name,
            "aggregator": aggregator_email,
            "project_dir": str(project_dir),
            "events_path": str(Path(events_path).resolve()),
            "figures_dir": str(project_dir / FIGURES_FOLDER),
            "registered_at": utc_iso(now),
            "registered_at_epoch": now,
        },
    )
    return path


# -- summaries ---------------------------------------------------------------------------------
@dataclass
class RoundInfo:
    """One round as the aggregator saw it (several send/receive steps of a round merge here)."""

    round: int
    datasites: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    latency_s: dict[str, float] = field(default_factory=dict)  # last reply latency per datasite
    metrics: dict[str, float] = field(default_factory=dict)  # what the ServerApp reported
    started_at: float | None = None
    finished_at: float | None = None
    finished: bool = False

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass
class DatasiteStats:
    """Traffic and latency of one datasite over a run."""

    email: str
    messages_sent: int = 0
    replies: int = 0
    errors: int = 0
    missing: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latency_sum_s: float = 0.0
    last_latency_s: float | None = None
    max_latency_s: float | None = None

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_sum_s / self.replies if self.replies else None


@dataclass
class RunInfo:
    """A registered run and the summary of its events file.

    ``status``: ``starting`` (no run_start yet), ``running``, ``completed``, ``failed``, or
    ``interrupted`` (no run_end, and the aggregator's heartbeat says it is gone).
    ``run_id`` is a string: Flower's 64-bit run ids do not survive JSON numbers in browsers.
    """

    run_id: str
    app_name: str
    aggregator: str
    project_dir: Path
    events_path: Path
    figures_dir: Path
    status: str = "starting"
    datasites: list[str] = field(default_factory=list)
    rounds: list[RoundInfo] = field(default_factory=list)
    stats: dict[str, DatasiteStats] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    ok: bool | None = None
    failures: dict[str, str] = field(default_factory=dict)
    registered_at: float | None = None
    last_event_at: float | None = None
    events: int = 0
    #: the server_round of every finished exchange, for :func:`count_rounds`
    finished_exchanges: list[int | None] = field(default_factory=list, repr=False)

    @property
    def rounds_completed(self) -> int:
        """The run's rounds (:func:`~syft_flwr.events.count_rounds`), as every view counts."""
        return count_rounds(self.finished_exchanges)

    @property
    def metrics(self) -> dict[int, dict[str, float]]:
        """Server round -> the metrics the ServerApp reported for it."""
        return {r.round: dict(r.metrics) for r in self.rounds if r.metrics}

    @property
    def final_metrics(self) -> dict[str, float]:
        """The metrics of the last round that reported any."""
        metrics = self.metrics
        return metrics[max(metrics)] if metrics else {}

    @property
    def current_round(self) -> int | None:
        return self.rounds[-1].round if self.rounds else None

    def to_dict(self, *, detail: bool = True) -> dict[str, Any]:
        """JSON-ready; ``detail=False`` leaves out the per-round and per-datasite tables."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "app_name": self.app_name,
            "aggregator": self.aggregator,
            "project_dir": str(self.project_dir),
            "status": self.status,
            "ok": self.ok,
            "datasites": self.datasites,
            "rounds_completed": self.rounds_completed,
            "current_round": self.current_round,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "started_at_iso": utc_iso(self.started_at) if self.started_at else None,
            "finished_at_iso": utc_iso(self.finished_at) if self.finished_at else None,
            "registered_at": self.registered_at,
            "last_event_at": self.last_event_at,
            "failures": self.failures,
            "events": self.events,
            "final_metrics": self.final_metrics,
        }
        if detail:
            data["rounds"] = [dict(asdict(r), duration_s=r.duration_s) for r in self.rounds]
            data["datasite_stats"] = {
                email: dict(asdict(s), mean_latency_s=s.mean_latency_s)
                for email, s in sorted(self.stats.items())
            }
        return data


class _EventsReader:
    """Parsed lines of append-only event files, read incrementally and shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[int, int, list[Event]]] = {}  # inode, offset

    def read(self, path: Path) -> list[Event]:
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        with self._lock:
            inode, offset, events = self._cache.get(path, (st.st_ino, 0, []))
            if inode != st.st_ino or st.st_size < offset:  # replaced or truncated: start over
                offset, events = 0, []
            if st.st_size > offset:
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(st.st_size - offset)
                end = chunk.rfind(b"\n") + 1  # a line still being written waits for its newline
                for raw in chunk[:end].splitlines():
                    try:
                        events.append(event_from_json(raw))
                    except ValueError as exc:  # not JSON, or not an event this version knows
                        logger.debug(f"skipping a line of {path}: {exc}")
                offset += end
            self._cache[path] = (st.st_ino, offset, events)
            return list(events)


_reader = _EventsReader()


def read_events(path: Path) -> list[Event]:
    """Every complete event line of ``path`` (an events.jsonl), oldest first, as events
    (lines that are not events are skipped)."""
    return _reader.read(path)


def _apply(run: RunInfo, events: list[Event]) -> None:
    rounds: dict[int, RoundInfo] = {}
    run.finished_exchanges = []

    def round_of(number: object) -> RoundInfo | None:
        if not isinstance(number, int):
            return None
        if number not in rounds:
            rounds[number] = RoundInfo(round=number)
        return rounds[number]

    def stats_of(email: str) -> DatasiteStats:
        if email not in run.stats:
            run.stats[email] = DatasiteStats(email=email)
        return run.stats[email]

    for ev in events:
        ts = float(ev.ts)
        run.last_event_at = ts or run.last_event_at
        match ev:
            case RunStarted():
                run.started_at = ts
                run.datasites = list(ev.datasites)
                run.app_name = ev.app or run.app_name
                for e in run.datasites:
                    stats_of(e)
            case RoundStarted() if r := round_of(ev.round):
                r.started_at = r.started_at or ts
                r.datasites = sorted(set(r.datasites) | set(ev.datasites))
            case MessageSent():
                s = stats_of(ev.datasite)
                s.messages_sent += 1
                s.bytes_sent += int(ev.nbytes or 0)
            case ReplyReceived():
                s = stats_of(ev.datasite)
                latency = float(ev.latency_s or 0.0)
                s.replies += 1
                s.bytes_received += int(ev.nbytes or 0)
                s.latency_sum_s += latency
                s.last_latency_s = latency
                s.max_latency_s = max(latency, s.max_latency_s or 0.0)
                if ev.error:
                    s.errors += 1
                if r := round_of(ev.round):
                    r.latency_s[ev.datasite] = latency
            case DatasiteMissing():
                stats_of(ev.datasite).missing += 1
            case RoundMetrics() if r := round_of(ev.round):
                r.metrics.update(ev.metrics)
            case RoundFinished() if r := round_of(ev.round):
                run.finished_exchanges.append(ev.server_round)
                r.finished, r.finished_at = True, ts
                r.failed.update({str(k): str(v) for k, v in dict(ev.failed or {}).items()})
                r.answered = sorted((set(r.answered) | set(ev.answered)) - set(r.failed))
            case RunFinished():
                run.finished_at = ts
                run.ok = bool(ev.ok)
                run.failures = {str(k): str(v) for k, v in dict(ev.failures or {}).items()}
    run.rounds = [rounds[k] for k in sorted(rounds)]
    run.events = len(events)


def summarize_events(run: RunInfo, *, aggregator_gone: bool = False) -> RunInfo:
    """Fill ``run`` from its events file and decide its status."""
    events = read_events(run.events_path)
    _apply(run, events)
    if run.ok is not None:
        run.status = "completed" if run.ok and not run.failures else "failed"
    elif run.started_at is None:
        run.status = "interrupted" if aggregator_gone else "starting"
    else:
        run.status = "interrupted" if aggregator_gone else "running"
    return run


def _load_registration(path: Path) -> RunInfo | None:
    try:
        data = read_json(path)
        return RunInfo(
            run_id=validate_name(str(data["run_id"]), "run id"),
            app_name=str(data.get("app_name") or ""),
            aggregator=validate_email(data["aggregator"]),
            project_dir=Path(data["project_dir"]),
            events_path=Path(data["events_path"]),
            figures_dir=Path(data.get("figures_dir") or Path(data["project_dir"]) / "figures"),
            registered_at=data.get("registered_at_epoch"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning(f"ignoring the run registration {path}: {exc}")
        return None


def _aggregator_gone(network: Network, email: str, offline_after: float) -> bool:
    """It published a heartbeat that is now offline (no heartbeat at all: we cannot tell)."""
    p = read_participant(network, email, offline_after=offline_after)
    return p.heartbeat_age is not None and not p.online


def list_runs(
    network: Network,
    *,
    aggregator: str | None = None,
    offline_after: float = DEFAULT_OFFLINE_AFTER,
) -> list[RunInfo]:
    """Every registered run on ``network`` (or of one ``aggregator``), newest first."""
    runs = []
    gone: dict[str, bool] = {}
    for path in network.run_registration_paths():
        run = _load_registration(path)
        if run is None or (aggregator is not None and run.aggregator != aggregator):
            continue
        if run.aggregator not in gone:
            gone[run.aggregator] = _aggregator_gone(network, run.aggregator, offline_after)
        runs.append(summarize_events(run, aggregator_gone=gone[run.aggregator]))
    runs.sort(key=lambda r: r.started_at or r.registered_at or 0.0, reverse=True)
    return runs


def get_run(
    network: Network, run_id: str | int, *, offline_after: float = DEFAULT_OFFLINE_AFTER
) -> RunInfo | None:
    """The registered run ``run_id`` (summarised), or None."""
    try:
        run_key = validate_name(str(run_id), "run id")
    except ValueError:
        return None
    for path in network.run_registration_paths(run_key):
        run = _load_registration(path)
        if run is not None and run.run_id == run_key:
            gone = _aggregator_gone(network, run.aggregator, offline_after)
            return summarize_events(run, aggregator_gone=gone)
    return None


def latest_files(folder: Path, suffixes: tuple[str, ...], limit: int) -> list[Path]:
    """The ``limit`` newest plain files directly in ``folder`` with one of ``suffixes``."""
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.name.lower().endswith(suffixes):
            continue
        if entry.is_file(follow_symlinks=False):
            found.append((entry.stat().st_mtime, Path(entry.path)))
    found.sort(reverse=True)
    return [p for _, p in found[:limit]]
