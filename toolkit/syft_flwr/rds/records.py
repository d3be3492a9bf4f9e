"""Typed records of the data owner's job store: what ``state.json`` of each job holds.

A :class:`JobRecord` is the owner's authoritative view of a job: the request it accepted (as
signed by the submitter), the code hash it saw and the one it pinned at approval, the status
with its history, and one :class:`RunRecord` per run. ``to_json``/``from_json`` give the
on-disk form (``version`` 1; a file written before records were versioned reads as version 1);
anything that does not parse raises :class:`~syft_flwr.rds.errors.JobRecordError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from syft_flwr.rds._files import utc_now
from syft_flwr.rds.errors import JobRecordError, JobStateError

RECORD_VERSION = 1


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
#: Statuses a job only leaves by the owner acting again (what ``wait`` waits for by default).
TERMINAL = ("completed", "failed", "rejected", "shared", "refused")
#: Statuses whose results can be shared.
SHAREABLE = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SHARED})


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


@dataclass
class StatusChange:
    """One step of a job's history."""

    status: str
    at: str
    reason: str | None = None


@dataclass
class RunRecord:
    """One run of a job: where its code, data, output and logs are, and how it ended."""

    n: int
    kind: str  # "private" or "mock"
    code_sha256: str
    code_dir: str
    data_dir: str
    output_dir: str
    stdout: str
    stderr: str
    timeout_s: float
    watcher_pid: int
    status: str = str(JobStatus.RUNNING)
    reason: str | None = None
    started_at: str = field(default_factory=utc_now)
    finished_at: str | None = None
    exit_code: int | None = None
    duration_s: float | None = None

    def finish(
        self, status: str, reason: str | None, exit_code: int | None, duration_s: float | None
    ) -> None:
        self.status, self.reason = str(status), reason
        self.exit_code, self.duration_s = exit_code, duration_s
        self.finished_at = utc_now()


@dataclass
class JobRecord:
    """The data owner's record of one accepted job (``private/<owner>/rds/jobs/<id>/``)."""

    job_id: str
    #: the submission as the submitter signed it; the owner acts on this copy only, never on
    #: the inbox's request.json, which others can rewrite
    request: dict[str, Any]
    #: the hash of the code when the owner first saw it, and the one pinned at approval
    seen_sha256: str
    submitter_key: str
    status: str = str(JobStatus.PENDING_CODE_REVIEW)
    reason: str | None = None
    pinned_sha256: str | None = None
    first_seen_at: str = field(default_factory=utc_now)
    updated_at: str | None = None
    shared_run: int | None = None
    runs: list[RunRecord] = field(default_factory=list)
    history: list[StatusChange] = field(default_factory=list)

    # -- what the signed request says ----------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.request["name"])

    @property
    def submitter(self) -> str:
        return str(self.request["submitter"])

    @property
    def dataset_name(self) -> str:
        return str(self.request["dataset_name"])

    @property
    def entrypoint(self) -> str:
        return str(self.request["entrypoint"])

    # -- changes -------------------------------------------------------------------------------
    def set_status(self, status: JobStatus, reason: str | None = None) -> None:
        """Move to ``status`` (with why), appending the step to the history."""
        self.status, self.reason = str(status), reason
        self.history.append(StatusChange(str(status), utc_now(), reason))

    def run(self, n: int | None = None) -> RunRecord:
        """Run ``n`` (default: the latest); JobStateError if the job never ran."""
        if not self.runs:
            raise JobStateError(f"job {self.job_id} has not been run yet")
        if n is None:
            return self.runs[-1]
        for record in self.runs:
            if record.n == n:
                return record
        raise ValueError(f"job {self.job_id} has no run {n} (runs: {[r.n for r in self.runs]})")

    @property
    def orphaned(self) -> bool:
        """True if the job is "running" but the data-owner process watching its run is gone."""
        if self.status != JobStatus.RUNNING or not self.runs:
            return False
        watcher = self.runs[-1].watcher_pid
        return bool(watcher) and watcher != os.getpid() and not _pid_alive(watcher)

    # -- on disk -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, where: str = "job record") -> JobRecord:
        """The record in ``data`` (parsed state.json); JobRecordError if it is not one."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"expected an object, found {type(data).__name__}")
            data = dict(data)
            version = data.pop("version", RECORD_VERSION)
            if version != RECORD_VERSION:
                raise ValueError(f"version {version!r}, this toolkit reads {RECORD_VERSION}")
            data["runs"] = [_build(RunRecord, r) for r in data.get("runs") or []]
            data["history"] = [_build(StatusChange, h) for h in data.get("history") or []]
            record = _build(cls, data)
            JobStatus(record.status)
            if not isinstance(record.request, dict):
                raise TypeError("request is not an object")
        except (TypeError, ValueError, KeyError) as exc:
            raise JobRecordError(
                f"{where} is not a valid job record ({exc}); it was edited by hand or written "
                "by another version. Keep it for investigation"
            ) from exc
        return record


def _build(cls: type, data: Any) -> Any:
    """``cls(**data)`` with only its fields; TypeError names a missing or unknown one."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected an object, found {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown fields {unknown}")
    return cls(**data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
