"""Heartbeats: each party says every few seconds that it is alive, how loaded it is and what runs.

A :class:`Heartbeat` owns ``datasites/<email>/public/status.json``: a daemon thread
rewrites it atomically every ``interval`` seconds, and marks it offline on exit. Readers
(:mod:`syft_flwr.monitor.participants`) treat a file older than ``offline_after`` as offline,
so a crashed process goes offline by itself. :class:`HeartbeatSubscriber` keeps the
aggregator's heartbeat in step with its run's events.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psutil
from loguru import logger

from syft_flwr.events import Event, RoundStarted, RunFinished, RunStarted
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network, validate_email

STATUS_VERSION = 1
_UNSET: Any = object()


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self.beats = 0

    # -- public API -----------------------------------------------------------------------------
    def start(self) -> Heartbeat:
        if self._thread is not None:
            raise RuntimeError(f"the heartbeat of {self.email} is already running")
        # The first cpu_percent() call only primes psutil's counters (it returns 0.0).
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._stop.clear()
        self.beat()
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-{self.email}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and write ``online: false``."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=max(5.0, self.interval * 2))
        self.beat(online=False)

    def update(self, *, job: Any = _UNSET, app: Any = _UNSET, round: Any = _UNSET) -> None:
        """Set what this party is running; only the keywords given change (``None`` clears).

        The status file says so when this returns (while the heartbeat is running).
        """
        with self._lock:
            for key, value in (("job", job), ("app", app), ("round", round)):
                if value is not _UNSET:
                    self._running[key] = value
        if self._thread is not None:
            self.beat()

    @property
    def running(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._running)

    def status(self, *, online: bool = True) -> dict[str, Any]:
        """The status document (what :meth:`beat` writes)."""
        now = time.time()
        proc = self._process
        with proc.oneshot():
            proc_cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss
        vm = psutil.virtual_memory()
        return {
            "version": STATUS_VERSION,
            "email": self.email,
            "role": self.role,
            "online": online,
            "pid": os.getpid(),
            "interval": self.interval,
            "cpu_percent": {"process": proc_cpu, "machine": psutil.cpu_percent(None)},
            "memory": {
                "process_rss_bytes": rss,
                "machine_percent": vm.percent,
                "machine_used_bytes": vm.total - vm.available,
                "machine_total_bytes": vm.total,
            },
            "running": self.running,
            "updated_at": utc_iso(now),
            "updated_at_epoch": now,
        }

    def beat(self, *, online: bool = True) -> None:
        """Write the status once. A failed write is logged, never raised into the caller."""
        # One writer at a time, so an older status can never replace a newer one.
        with self._write_lock:
            try:
                # Not fsynced: rewritten every few seconds; atomicity is what matters.
                atomic_write_json(self.path, self.status(online=online), durable=False)
                self.beats += 1
            except (OSError, psutil.Error) as exc:
                logger.warning(f"heartbeat of {self.email} could not be written: {exc}")

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- thread ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


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
