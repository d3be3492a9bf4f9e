"""What the aggregator's grid tells an observer, and waiting for datasites before round 1.

``DatasiteGrid`` calls an optional observer at each step of a run. Implement
:class:`GridObserver` (a Protocol) or subclass :class:`NullObserver` and override what you
need; :class:`ObserverFanout` passes every call to several observers and never lets an
observer's exception reach the grid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from loguru import logger

from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, Participant, read_participant
from syft_flwr.network.layout import Network, validate_email

if TYPE_CHECKING:
    from syft_flwr.monitor.heartbeat import Heartbeat


@runtime_checkable
class GridObserver(Protocol):
    """The calls a grid makes during a run (all on the aggregator's side)."""

    def run_started(self, run_id: int, app_name: str, datasites: list[str]) -> None: ...

    def round_started(self, round: int, datasites: list[str]) -> None: ...

    def message_sent(self, email: str, round: int, nbytes: int) -> None: ...

    def reply_received(
        self,
        email: str,
        round: int,
        latency_s: float,
        nbytes: int,
        error: str | None,
    ) -> None: ...

    def datasite_missing(self, email: str, round: int, waited_s: float) -> None: ...

    def round_finished(self, round: int, answered: list[str], failed: dict[str, str]) -> None: ...

    def run_finished(self, ok: bool, failures: dict[str, str]) -> None: ...


class NullObserver:
    """An observer that ignores everything; subclass it and override what you need."""

    def run_started(self, run_id: int, app_name: str, datasites: list[str]) -> None:
        pass

    def round_started(self, round: int, datasites: list[str]) -> None:
        pass

    def message_sent(self, email: str, round: int, nbytes: int) -> None:
        pass

    def reply_received(
        self,
        email: str,
        round: int,
        latency_s: float,
        nbytes: int,
        error: str | None,
    ) -> None:
        pass

    def datasite_missing(self, email: str, round: int, waited_s: float) -> None:
        pass

    def round_finished(self, round: int, answered: list[str], failed: dict[str, str]) -> None:
        pass

    def run_finished(self, ok: bool, failures: dict[str, str]) -> None:
        pass


class ObserverFanout(NullObserver):
    """Forward every call to each observer; an observer that raises is logged and skipped,
    so monitoring can never break a run."""

    def __init__(self, *observers: GridObserver | None):
        self.observers = [o for o in observers if o is not None]

    def _call(self, method: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(*args)
            except Exception as exc:  # monitoring must never stop the run
                logger.warning(f"observer {type(observer).__name__}.{method} failed: {exc!r}")

    def run_started(self, run_id: int, app_name: str, datasites: list[str]) -> None:
        self._call("run_started", run_id, app_name, datasites)

    def round_started(self, round: int, datasites: list[str]) -> None:
        self._call("round_started", round, datasites)

    def message_sent(self, email: str, round: int, nbytes: int) -> None:
        self._call("message_sent", email, round, nbytes)

    def reply_received(
        self, email: str, round: int, latency_s: float, nbytes: int, error: str | None
    ) -> None:
        self._call("reply_received", email, round, latency_s, nbytes, error)

    def datasite_missing(self, email: str, round: int, waited_s: float) -> None:
        self._call("datasite_missing", email, round, waited_s)

    def round_finished(self, round: int, answered: list[str], failed: dict[str, str]) -> None:
        self._call("round_finished", round, answered, failed)

    def run_finished(self, ok: bool, failures: dict[str, str]) -> None:
        self._call("run_finished", ok, failures)


class HeartbeatObserver(NullObserver):
    """Keeps a :class:`Heartbeat`'s ``running`` (app, round) in step with the grid's run."""

    def __init__(self, heartbeat: Heartbeat, job: str | None = None):
        self.heartbeat = heartbeat
        self.job = job

    def run_started(self, run_id: int, app_name: str, datasites: list[str]) -> None:
        self.heartbeat.update(job=self.job, app=app_name, round=None)

    def round_started(self, round: int, datasites: list[str]) -> None:
        self.heartbeat.update(round=round)

    def run_finished(self, ok: bool, failures: dict[str, str]) -> None:
        self.heartbeat.update(job=None, app=None, round=None)


def _describe(p: Participant) -> str:
    if p.online:
        return f"{p.email} (online as {p.role or 'an unknown role'}, not serving the app yet)"
    if p.heartbeat_age is None:
        return f"{p.email} (offline, no heartbeat yet)"
    return f"{p.email} (offline, last heartbeat {p.heartbeat_age:.0f} s ago)"


def wait_for_datasites(
    network: Network,
    emails: Iterable[str],
    *,
    timeout: float | None,
    offline_after: float = DEFAULT_OFFLINE_AFTER,
    progress: Callable[[str], object] | None = print,
    poll_interval: float = 0.2,
    role: str | None = "datasite",
) -> None:
    """Return once every datasite in ``emails`` has a fresh, online heartbeat of ``role``.

    Only a heartbeat of ``role`` counts (None: any): a data owner's open session is online
    (role ``data owner``) but serves no app, so by default it does not end the wait.

    ``progress`` receives a line such as ``waiting for 1/2 datasites: do2@x.org (offline, no
    heartbeat yet)`` whenever the set of offline datasites changes (and every 10 s). Raises
    TimeoutError naming the datasites still offline after ``timeout`` seconds (None: no limit).
    """
    emails = [validate_email(e) for e in emails]
    deadline = None if timeout is None else time.monotonic() + timeout
    last_key, last_print = "", 0.0
    while True:
        offline = [
            p
            for p in (read_participant(network, e, offline_after=offline_after) for e in emails)
            if not (p.online and (role is None or p.role == role))
        ]
        if not offline:
            if last_key and progress is not None:
                progress(f"all {len(emails)} datasites are online")
            return
        line = f"waiting for {len(offline)}/{len(emails)} datasites: " + ", ".join(
            _describe(p) for p in offline
        )
        key = ",".join(f"{p.email}:{p.online}" for p in offline)
        if progress is not None and (key != last_key or time.monotonic() - last_print >= 10.0):
            progress(line)
            last_key, last_print = key, time.monotonic()
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"{len(offline)} of {len(emails)} datasites still offline after {timeout:g} s: "
                + ", ".join(_describe(p) for p in offline)
                + ". Ask their data owners to approve and run the job (their job publishes a "
                "heartbeat in public/status.json), or raise the timeout."
            )
        remaining = poll_interval if deadline is None else deadline - time.monotonic()
        time.sleep(max(0.0, min(poll_interval, remaining)))
