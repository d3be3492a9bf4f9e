"""Heartbeats: each party says every few seconds that it is alive, how loaded it is and what runs.

A :class:`Heartbeat` owns ``datasites/<email>/public/status.json``: it is rewritten atomically
every ``interval`` seconds, and marked offline on exit. One thread per process beats every
heartbeat of the process (a simulation of a thousand datasites has one, not a thousand), and
the process's load is measured at most once a second for all of them. Readers
(:mod:`syft_flwr.monitor.participants`) treat a file older than ``offline_after`` as offline,
so a crashed process goes offline by itself. :class:`HeartbeatSubscriber` keeps the
aggregator's heartbeat in step with its run's events.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psutil
from loguru import logger

from syft_flwr.crypto import next_sequence, sign_document
from syft_flwr.events import Event, RoundStarted, RunFinished, RunStarted
from syft_flwr.monitor.participants import HEARTBEAT_DOMAIN
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network, validate_email

STATUS_VERSION = 1
_UNSET: Any = object()


_STATS_MAX_AGE = 1.0
_stats_lock = threading.Lock()
_stats: tuple[float, dict[str, Any]] | None = None


def _load_now() -> dict[str, Any]:
    """This process's and the machine's load, measured at most once a second (psutil calls
    cost ~0.1 ms each: a thousand heartbeats of one process share one measurement)."""
    global _stats
    with _stats_lock:
        now = time.monotonic()
        if _stats is not None and now - _stats[0] < _STATS_MAX_AGE:
            return _stats[1]
        proc = psutil.Process()
        with proc.oneshot():
            proc_cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss
        vm = psutil.virtual_memory()
        load = {
            "cpu_percent": {"process": proc_cpu, "machine": psutil.cpu_percent(None)},
            "memory": {
                "process_rss_bytes": rss,
                "machine_percent": vm.percent,
                "machine_used_bytes": vm.total - vm.available,
                "machine_total_bytes": vm.total,
            },
        }
        _stats = (now, load)
        return load


class _Beater:
    """The one thread that beats every running :class:`Heartbeat` of the process, each at
    its own interval (a heap of due times: no work between beats)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Heartbeat]] = []
        #: id(heartbeat) -> (the sequence number of its entry in the heap, the heartbeat)
        self._due: dict[int, tuple[int, Heartbeat]] = {}
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, heartbeat: Heartbeat) -> None:
        with self._cond:
            self._push(heartbeat)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="syft-flwr-heartbeats", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, heartbeat: Heartbeat) -> None:
        with self._cond:
            self._due.pop(id(heartbeat), None)  # its heap entry is skipped when it comes up

    def _push(self, heartbeat: Heartbeat) -> None:
        seq = next(self._seq)
        self._due[id(heartbeat)] = (seq, heartbeat)
        heapq.heappush(self._heap, (time.monotonic() + heartbeat.interval, seq, heartbeat))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                due, seq, heartbeat = self._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._heap)
                entry = self._due.get(id(heartbeat))
                if entry is None or entry[0] != seq:
                    continue  # stopped (or restarted) since
                self._push(heartbeat)
            try:
                heartbeat._tick()
            except Exception as exc:  # one broken heartbeat must not stop the others
                logger.warning(f"heartbeat of {heartbeat.email} failed: {exc!r}")

    def running(self) -> list[Heartbeat]:
        with self._cond:
            return [heartbeat for _, heartbeat in self._due.values()]


_beater = _Beater()


def running_heartbeats() -> list[Heartbeat]:
    """The heartbeats this process is beating now."""
    return _beater.running()


def utc_iso(epoch: float) -> str:
    """``epoch`` as an ISO 8601 UTC timestamp (``2024-05-01T12:00:00.123+00:00``)."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")


class Heartbeat:
    """Publish this party's liveness and load to ``network.status_path(email)``.

    Use as a context manager::

        with Heartbeat(network, "do1@openmined.org", "datasite") as hb:
            hb.update(job="j1", app="fed-analytics", round=1)

    The first status is written before ``__enter__`` returns; ``update`` rewrites it at once
    (so a new round shows up without waiting for the next beat); the exit writes
    ``online: false``.
    """

    def __init__(self, network: Network, email: str, role: str, *, interval: float = 2.0):
        if interval <= 0:
            raise ValueError(f"heartbeat interval must be positive, got {interval}")
        self.network = network
        self.email = validate_email(email)
        self.role = role
        self.interval = interval
        self.path = network.status_path(email)
        self._running: dict[str, Any] = {"job": None, "app": None, "round": None}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._running_beats = False
        self.beats = 0

    # -- public API -----------------------------------------------------------------------------
    def start(self) -> Heartbeat:
        if self._running_beats:
            raise RuntimeError(f"the heartbeat of {self.email} is already running")
        _load_now()  # the first cpu_percent() call only primes psutil's counters
        self._running_beats = True
        self.beat()
        _beater.add(self)
        return self

    def stop(self) -> None:
        """Stop beating and write ``online: false``."""
        if not self._running_beats:
            return
        self._running_beats = False
        _beater.remove(self)
        self.beat(online=False)

    def _tick(self) -> None:
        """What the process's heartbeat thread does every ``interval``."""
        self.beat()

    def update(
        self,
        *,
        job: Any = _UNSET,
        app: Any = _UNSET,
        round: Any = _UNSET,
        limits: Any = _UNSET,
    ) -> None:
        """Set what this party is running; only the keywords given change (``None`` clears).
        ``limits`` (a sandboxed job's, one line) appears in ``running`` once set.

        The status file says so when this returns (while the heartbeat is running).
        """
        with self._lock:
            for key, value in (("job", job), ("app", app), ("round", round), ("limits", limits)):
                if value is not _UNSET:
                    self._running[key] = value
        if self._running_beats:
            self.beat()

    @property
    def running(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._running)

    def status(self, *, online: bool = True) -> dict[str, Any]:
        """The status document (what :meth:`beat` writes)."""
        now = time.time()
        load = _load_now()
        return {
            "version": STATUS_VERSION,
            "email": self.email,
            "role": self.role,
            "online": online,
            "pid": os.getpid(),
            "interval": self.interval,
            "cpu_percent": load["cpu_percent"],
            "memory": load["memory"],
            "running": self.running,
            "updated_at": utc_iso(now),
            "updated_at_epoch": now,
        }

    def signed_status(self, *, online: bool = True) -> dict[str, Any]:
        """The status with the party's next sequence number, signed by the party (readers
        refuse an unsigned or older one: a forged heartbeat shows no datasite online)."""
        status = {**self.status(online=online), "seq": next_sequence(self.network, self.email)}
        return sign_document(self, HEARTBEAT_DOMAIN, status)  # self is a KeyOwner

    def beat(self, *, online: bool = True) -> None:
        """Write the status once. A failed write is logged, never raised into the caller."""
        # One writer at a time, so an older status can never replace a newer one.
        with self._write_lock:
            try:
                # Not fsynced: rewritten every few seconds; atomicity is what matters.
                atomic_write_json(self.path, self.signed_status(online=online), durable=False)
                self.beats += 1
            except (OSError, psutil.Error) as exc:
                logger.warning(f"heartbeat of {self.email} could not be written: {exc}")

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class HeartbeatSubscriber:
    """Keeps a :class:`Heartbeat`'s ``running`` (job, app, round) in step with a run's events."""

    def __init__(self, heartbeat: Heartbeat, job: str | None = None):
        self.heartbeat = heartbeat
        self.job = job

    def on_event(self, event: Event) -> None:
        match event:
            case RunStarted(app=app):
                self.heartbeat.update(job=self.job, app=app, round=None)
            case RoundStarted(round=round_):
                self.heartbeat.update(round=round_)
            case RunFinished():
                self.heartbeat.update(job=None, app=None, round=None)
