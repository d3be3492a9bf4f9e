"""A data owner's presence: the heartbeat its admin sessions share (role ``data owner``).

Every admin session of an owner in one process shares one :class:`OwnerHeartbeat` per
(network, email), got from :func:`join_owner_heartbeat`. It stops when the last of those
sessions leaves (``session.close()``), within one interval once they are all garbage-collected,
and at interpreter exit.

It never replaces a fresh, online status that another writer published for the same datasite:
while one of the owner's jobs runs, the job's datasite runtime writes ``status.json`` with the
job, app and round, and the owner's beats pause until that status goes offline or stale. While
a job started by one of the sessions runs, the owner's own status names it (``running.job``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from syft_flwr.monitor.heartbeat import Heartbeat
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, read_participant
from syft_flwr.network.layout import Network

ROLE = "data owner"

_registry_lock = threading.Lock()
_registry: dict[tuple[str, str], OwnerHeartbeat] = {}


class _Finishes(Protocol):
    @property
    def done(self) -> bool: ...


class TrackedRun:
    """A run of ``job_id`` as the owner's heartbeat sees it: active until its ``handle`` is
    done (or, without a handle, until the block that started it ends)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.handle: _Finishes | None = None
        self.ended = False

    @property
    def active(self) -> bool:
        return not self.ended and not (self.handle is not None and self.handle.done)


class OwnerHeartbeat(Heartbeat):
    """The heartbeat of a data owner's admin sessions; see the module docstring."""

    def __init__(
        self,
        network: Network,
        email: str,
        *,
        interval: float = 2.0,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
    ):
        super().__init__(network, email, ROLE, interval=interval)
        self.offline_after = offline_after
        self.key = (str(network.root), self.email)
        self._owners: weakref.WeakSet[object] = weakref.WeakSet()
        self._runs: list[TrackedRun] = []

    @property
    def running(self) -> dict[str, Any]:
        """The jobs the sessions' runs are running now (comma-separated), no app or round."""
        with self._lock:
            self._runs = [r for r in self._runs if r.active]
            jobs = [r.job_id for r in self._runs]
        return {"job": ", ".join(jobs) or None, "app": None, "round": None}

    @contextlib.contextmanager
    def running_job(self, job_id: str) -> Iterator[TrackedRun]:
        """Name ``job_id`` in the status while it runs: set ``.handle`` to the run's handle
        (anything with ``done``) inside the block; without one, the run ends with the block."""
        run = TrackedRun(job_id)
        with self._lock:
            self._runs.append(run)
        self.beat()
        try:
            yield run
        finally:
            if run.handle is None or run.handle.done:
                run.ended = True
                self.beat()

    def someone_else_publishes(self) -> bool:
        """True while ``status.json`` holds a fresh, online status of another writer (a job's
        datasite runtime, another process's session)."""
        p = read_participant(self.network, self.email, offline_after=self.offline_after)
        return p.online and not (p.pid == os.getpid() and p.role == self.role)

    def beat(self, *, online: bool = True) -> None:
        """Write the status, unless another writer's is fresh or the datasite is gone."""
        if not self.network.datasite(self.email).is_dir():
            return  # deleted (a reset, a removed network): never recreate it
        if self.someone_else_publishes():
            return
        super().beat(online=online)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No write of this heartbeat happens inside the block (e.g. while deleting the
        datasite)."""
        with self._write_lock:
            yield

    def leave(self, owner: object) -> None:
        """``owner`` no longer keeps this heartbeat running; the last one stops it."""
        with _registry_lock:
            self._owners.discard(owner)
            if self._owners or not self._unregister():
                return
        self.stop()

    def _unregister(self) -> bool:
        """Drop this heartbeat from the registry (hold ``_registry_lock``); False if gone."""
        if _registry.get(self.key) is not self:
            return False
        del _registry[self.key]
        return True

    def _tick(self) -> None:
        with _registry_lock:
            retire = not self._owners and self._unregister()
        if retire:  # every session was garbage-collected without close()
            self.stop()
            return
        self.beat()


def join_owner_heartbeat(
    owner: object, network: Network, email: str, *, interval: float = 2.0
) -> OwnerHeartbeat:
    """The running heartbeat of ``email`` on ``network`` in this process, started if needed;
    it keeps running while ``owner`` (held weakly) lives and has not called ``leave``."""
    key = (str(network.root), email)
    with _registry_lock:
        heartbeat = _registry.get(key)
        if heartbeat is None:
            heartbeat = OwnerHeartbeat(network, email, interval=interval)
            heartbeat.start()
            _registry[key] = heartbeat
        heartbeat._owners.add(owner)
        return heartbeat


def owner_heartbeat(network: Network, email: str) -> OwnerHeartbeat | None:
    """The running heartbeat of ``email`` on ``network`` in this process, if any."""
    with _registry_lock:
        return _registry.get((str(network.root), email))


@atexit.register
def stop_owner_heartbeats() -> None:
    """Stop every owner heartbeat of this process (at interpreter exit)."""
    with _registry_lock:
        heartbeats = list(_registry.values())
        _registry.clear()
    for heartbeat in heartbeats:
        heartbeat.stop()
