"""Who is on the network: every datasite folder with its heartbeat (status.json), if any;
:func:`wait_for_datasites` waits for a run's datasites before round 1.

A heartbeat counts only if it is a regular file of at most 64 KB (read without following a
link or blocking on a FIFO), signed by its datasite under :data:`HEARTBEAT_DOMAIN`, and not
older (its ``seq``) than one this reader already accepted; anything else shows the datasite
offline with the reason in ``problem``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from syft_flwr.crypto import (
    SeenSequences,
    SignatureError,
    StaleDocumentError,
    sequence_of,
    verify_document,
)
from syft_flwr.network.layout import Network, validate_email
from syft_flwr.network.safe_read import read_regular

DEFAULT_OFFLINE_AFTER = 15.0
HEARTBEAT_DOMAIN = "monitor.heartbeat.v1"


@dataclass
class Participant:
    """A datasite as its heartbeat describes it.

    ``online`` is true only when the heartbeat says so and is younger than ``offline_after``;
    ``heartbeat_age`` is None when the datasite never wrote one.
    """

    email: str
    online: bool
    heartbeat_age: float | None = None
    role: str | None = None
    cpu: dict[str, float] | None = None  # {"process": %, "machine": %}
    memory: dict[str, float] | None = None  # process_rss_bytes, machine_percent, ...
    running: dict[str, Any] = field(default_factory=dict)  # job, app, round
    pid: int | None = None
    updated_at: str | None = None
    problem: str | None = None  # why the heartbeat could not be read, if it could not

    @property
    def state(self) -> str:
        """``online``, ``offline`` or ``no heartbeat``."""
        if self.online:
            return "online"
        return "offline" if self.heartbeat_age is not None else "no heartbeat"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state
        return data


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_participant(
    network: Network,
    email: str,
    *,
    offline_after: float = DEFAULT_OFFLINE_AFTER,
    now: float | None = None,
    reader: str | None = None,
) -> Participant:
    """The heartbeat of one datasite; a missing, unreadable, unsigned or replayed one means
    offline. ``reader`` (the party reading, if any) checks the signer's key against its pin."""
    validate_email(email)
    now = time.time() if now is None else now
    path = network.status_path(email)
    try:
        raw = read_regular(path, "status")
    except FileNotFoundError:
        return Participant(email=email, online=False)
    except (OSError, ValueError) as exc:  # a FIFO, a link to /dev/zero, a huge file
        return Participant(email=email, online=False, problem=f"unreadable: {exc}")
    try:
        document = json.loads(raw)
        data = verify_document(network, email, HEARTBEAT_DOMAIN, document, reader=reader)
        SeenSequences(network, reader).check(
            email, "heartbeat", sequence_of(data, f"{path}"), f"the heartbeat {path}"
        )
    except (SignatureError, StaleDocumentError) as exc:
        return Participant(email=email, online=False, problem=f"refused status.json: {exc}")
    except (ValueError, RecursionError) as exc:
        return Participant(email=email, online=False, problem=f"malformed status.json: {exc}")

    updated = _float(data.get("updated_at_epoch"))
    if updated is None:  # an older or foreign writer: fall back to the file's time
        try:
            updated = path.stat().st_mtime
        except OSError:
            updated = None
    # Clocks of synced machines may disagree a little: never report a negative age.
    age = max(0.0, now - updated) if updated is not None else None
    fresh = age is not None and age <= offline_after
    running = data.get("running") if isinstance(data.get("running"), dict) else {}
    cpu = data.get("cpu_percent") if isinstance(data.get("cpu_percent"), dict) else None
    memory = data.get("memory") if isinstance(data.get("memory"), dict) else None
    return Participant(
        email=email,
        online=bool(data.get("online")) and fresh,
        heartbeat_age=age,
        role=data.get("role") if isinstance(data.get("role"), str) else None,
        cpu=cpu,
        memory=memory,
        running=running,
        pid=data.get("pid") if isinstance(data.get("pid"), int) else None,
        updated_at=data.get("updated_at") if isinstance(data.get("updated_at"), str) else None,
    )


def list_participants(
    network: Network, *, offline_after: float = DEFAULT_OFFLINE_AFTER, now: float | None = None
) -> list[Participant]:
    """Every datasite folder on ``network``, sorted by email, with its liveness and load.

    Folders whose names are not valid emails are not datasites and are skipped.
    """
    now = time.time() if now is None else now
    found = []
    for email in network.datasite_emails():
        try:
            validate_email(email)
        except ValueError:
            continue
        found.append(read_participant(network, email, offline_after=offline_after, now=now))
    return found


# -- waiting for datasites before round 1 -----------------------------------------------------
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
