"""The data owner's authoritative record of each job, kept in its private folder.

```
<private>/rds/jobs/<job_id>/state.json      status, pinned hash, reason, history, runs
<private>/rds/jobs/<job_id>/runs/<n>/       code/ (verified copy), stdout.log, stderr.log, output/
<private>/rds/seen/<job_id>                  marker: this job id was accepted once (replay guard)
<private>/rds/refused/<key>.json            why an inbox entry was refused at intake
<private>/rds/quarantine/<key>/             the refused entry itself, moved out of the inbox
```

Nothing written by another party (the inbox's request or status mirror) is ever taken as the
job's status; the inbox only tells the data owner that a job exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from syft_flwr.network.atomic import atomic_write_json, read_json
from syft_flwr.network.files import file_lock
from syft_flwr.network.layout import Network, validate_name
from syft_flwr.rds._files import utc_now


class JobStatus(StrEnum):
    """pending_code_review → approved | rejected → running → completed | failed → shared.

    ``refused``: refused at intake (unsigned, forged, replayed, altered); never reviewed.
    """

    PENDING_CODE_REVIEW = "pending_code_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SHARED = "shared"
    REFUSED = "refused"


#: Statuses from which a run may start (a job may be re-run after it finished).
RUNNABLE = frozenset({JobStatus.APPROVED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SHARED})
TERMINAL = ("completed", "failed", "rejected", "shared", "refused")


class JobStateStore:
    """Reads and updates ``state.json`` of the jobs of one data owner, under a per-job lock."""

    def __init__(self, network: Network, owner: str):
        self.network = network
        self.owner = owner
        self.rds_dir = network.private_dir(owner) / "rds"
        self.root = self.rds_dir / "jobs"
        self.refused_dir = self.rds_dir / "refused"
        self.quarantine_dir = self.rds_dir / "quarantine"
        self.seen_dir = self.rds_dir / "seen"

    def job_dir(self, job_id: str) -> Path:
        return self.root / validate_name(job_id, "job id")

    def state_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "state.json"

    def run_dir(self, job_id: str, n: int) -> Path:
        return self.job_dir(job_id) / "runs" / str(n)

    def job_ids(self) -> list[str]:
        """Every job the owner has a record of (even if its inbox folder is gone)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())

    def load(self, job_id: str) -> dict[str, Any] | None:
        path = self.state_path(job_id)
        if not path.exists():
            return None
        return read_json(path)

    def seen_path(self, job_id: str) -> Path:
        """A marker kept when a job is accepted, even if its records are removed later."""
        return self.seen_dir / validate_name(job_id, "job id")

    def mark_seen(self, job_id: str) -> None:
        atomic_write_json(self.seen_path(job_id), {"job_id": job_id, "seen_at": utc_now()})

    def refused_path(self, key: str) -> Path:
        return self.refused_dir / f"{validate_name(key, 'refusal key')}.json"

    def load_refused(self, key: str) -> dict[str, Any] | None:
        """The refusal record of ``key`` (a job id or ``entry-<hash>``), None if not refused."""
        path = self.refused_path(key)
        return read_json(path) if path.exists() else None

    def refused_records(self) -> list[dict[str, Any]]:
        if not self.refused_dir.is_dir():
            return []
        out = []
        for path in sorted(self.refused_dir.glob("*.json")):
            if not path.name.startswith("."):
                out.append(read_json(path))
        return sorted(out, key=lambda r: (r.get("refused_at", ""), r.get("key", "")))

    @contextmanager
    def intake_locked(self) -> Iterator[None]:
        """Serialises the refusal of inbox entries that are not named like a job id."""
        with file_lock(self.rds_dir / ".intake.lock"):
            yield

    @contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        with file_lock(self.job_dir(job_id) / ".lock"):
            yield

    def update(self, job_id: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the state under the job's lock and write it back."""
        with self.locked(job_id):
            state = self.load(job_id)
            if state is None:
                raise FileNotFoundError(f"no state for job {job_id} in {self.root}")
            change(state)
            state["updated_at"] = utc_now()
            atomic_write_json(self.state_path(job_id), state)
            return state


def set_status(state: dict[str, Any], status: JobStatus, reason: str | None = None) -> None:
    state["status"] = str(status)
    state["reason"] = reason
    entry = {"status": str(status), "at": utc_now(), "reason": reason}
    state.setdefault("history", []).append(entry)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned_run(state: dict[str, Any]) -> bool:
    """True if the job is "running" but the data-owner process watching its run is gone."""
    if state.get("status") != JobStatus.RUNNING or not state.get("runs"):
        return False
    watcher = state["runs"][-1].get("watcher_pid")
    return bool(watcher) and watcher != os.getpid() and not _pid_alive(watcher)


def status_set(status: str | Iterable[str] | None) -> set[str] | None:
    """The statuses asked for (None: all), checked against :class:`JobStatus`."""
    if status is None:
        return None
    wanted = {status} if isinstance(status, str) else {str(s) for s in status}
    unknown = wanted - {s.value for s in JobStatus}
    if unknown:
        raise ValueError(
            f"unknown status {sorted(unknown)}: use one of {[s.value for s in JobStatus]}"
        )
    return wanted
