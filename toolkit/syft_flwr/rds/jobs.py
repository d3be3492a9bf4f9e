"""Jobs as both roles see them: the :class:`Job` view, the inbox, results and waiting.

```
datasites/<do>/app_data/rds/jobs/<job_id>/   written by the submitter: code/, request.json
                                             (signed by the submitter, see rds/intake.py)
                                             written by the data owner: status.json (a signed
                                             mirror for the submitter), results/ (after
                                             sharing, with a signed manifest.json)
private/<do>/rds/jobs/<job_id>/state.json    the data owner's record (rds/store.py)
```

``session.job`` is a :class:`~syft_flwr.rds.guest_jobs.GuestJobs` for a data scientist and an
:class:`~syft_flwr.rds.owner_jobs.OwnerJobs` for the datasite's owner; both build on
:class:`JobsView`, which holds what they share.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.network.atomic import is_temporary
from syft_flwr.network.layout import Network, validate_name
from syft_flwr.network.safe_read import is_plain_path
from syft_flwr.rds._files import plain_folder, wait_until
from syft_flwr.rds.client import RDSClient
from syft_flwr.rds.code import SubmissionLimits, render_code
from syft_flwr.rds.errors import JobRefusedError, JobStateError
from syft_flwr.rds.intake import IntakePolicy
from syft_flwr.rds.records import TERMINAL, JobStatus, status_set
from syft_flwr.rds.signed import ResultsNotSharedError, ResultsTamperedError, verify_results

#: how much of each log ``show_logs`` prints by default (the end of it)
LOG_PREVIEW_CHARS = 20_000


def new_job_id() -> str:
    """A sortable uid: UTC time to the microsecond, then 32 random bits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(4)}"


@dataclass(eq=False)
class Job:
    """A job in a datasite's inbox. ``status`` and ``reason`` are read fresh on each access."""

    uid: str
    name: str
    dataset_name: str
    entrypoint: str
    submitter: str
    host: str
    created_at: str
    description: str
    code_sha256: str
    code_path: Path
    _jobs: JobsView = field(repr=False)

    @property
    def status(self) -> str:
        """The job's current status, read afresh (the owner's record for the owner, the
        owner-signed mirror for a guest): pending_code_review, approved, rejected, running,
        completed, failed or shared."""
        return self._jobs.status_of(self.uid)[0]

    @property
    def reason(self) -> str | None:
        """Why the job was rejected or failed (None otherwise)."""
        return self._jobs.status_of(self.uid)[1]

    @property
    def results_path(self) -> Path:
        """Where shared results appear in the job's folder (use ``session.job.get_results``, which
        checks the owner's signature, rather than reading it directly)."""
        return self._jobs.job_dir(self.uid) / "results"

    def show_user_code(self) -> str:
        """Print every file of the job's code under a header with its name; return the text.

        For the data owner this is its own copy taken at intake (what approval pins and what
        runs). Hidden characters are shown escaped and suspicious files flagged
        (:mod:`syft_flwr.rds.review`).
        """
        text = render_code(self.code_path, self._jobs.limits)
        print(text)
        return text

    def __repr__(self) -> str:
        return (
            f"Job(uid={self.uid!r}, name={self.name!r}, dataset={self.dataset_name!r}, "
            f"entrypoint={self.entrypoint!r}, submitter={self.submitter!r}, host={self.host!r}, "
            f"status={self.status!r})"
        )


JobRef = Job | str


def job_uid(job: JobRef) -> str:
    """The uid of ``job`` (a Job or its uid), checked to be a safe folder name."""
    return validate_name(job.uid if isinstance(job, Job) else str(job), "job uid")


class JobsView:
    """What both roles share: ``host``'s job inbox, Job views, results and waiting.

    Subclasses say where a job's status comes from (:meth:`status_of`) and which jobs are
    listed (:meth:`get`, :meth:`get_all`).
    """

    def __init__(
        self, client: RDSClient, host: str, limits: SubmissionLimits, intake: IntakePolicy
    ):
        self.client = client
        self.host = host
        self.limits = limits
        self.intake = intake
        self._warned: set[str] = set()

    @property
    def network(self) -> Network:
        return self.client.network

    # -- the inbox ------------------------------------------------------------------------------
    @property
    def inbox(self) -> Path:
        return self.network.jobs_dir(self.host)

    def job_dir(self, uid: str) -> Path:
        return self.network.job_inbox_dir(self.host, uid)

    def real_job_dir(self, uid: str) -> Path:
        """The inbox folder of ``uid``; PermissionError if it was replaced by a symlink or file."""
        return plain_folder(self.job_dir(uid), self.network.datasite(self.host))

    def inbox_is_plain(self) -> bool:
        """Whether the jobs inbox is a plain folder of the datasite (False if it, or a folder
        above it, was replaced by a symlink: nothing in it is then read, moved or listed)."""
        if is_plain_path(self.inbox, self.network.datasite(self.host)):
            return True
        self.warn_once(
            "inbox",
            f"{self.inbox} is not a plain folder of {self.host}'s datasite (a symlink was put "
            "in its place or above it): ignoring it; remove the link and recreate the folder",
        )
        return False

    def entries(self) -> tuple[list[str], list[str]]:
        """Names in the inbox: (named like a job id, anything else); hidden names skipped.
        Nothing if the inbox is not a plain folder (see :meth:`inbox_is_plain`)."""
        if not self.inbox.is_dir() or not self.inbox_is_plain():
            return [], []
        uids, other = [], []
        for entry in os.listdir(self.inbox):
            if is_temporary(entry):
                continue
            try:
                validate_name(entry)
            except ValueError:
                other.append(entry)
                continue
            uids.append(entry)
        return sorted(uids), sorted(other)

    def job_from_request(self, req: dict[str, Any]) -> Job:
        """The Job view of a (verified) request payload."""
        uid = req["job_id"]
        return Job(
            uid=uid,
            name=req["name"],
            dataset_name=req["dataset_name"],
            entrypoint=req["entrypoint"],
            submitter=req["submitter"],
            host=self.host,
            created_at=req["created_at"],
            description=str(req.get("description", "")),
            code_sha256=req["code_sha256"],
            code_path=self.job_dir(uid) / "code",
            _jobs=self,
        )

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    # -- what each role defines -----------------------------------------------------------------
    def status_of(self, uid: str) -> tuple[str, str | None]:
        """(status, reason) of ``uid`` as this role may know it."""
        raise NotImplementedError

    def get(self, uid: JobRef) -> Job:
        raise NotImplementedError

    def get_all(self, status: str | Iterable[str] | None = None) -> list[Job]:
        raise NotImplementedError

    # -- results and waiting --------------------------------------------------------------------
    def get_results(self, job: JobRef) -> Path:
        """The folder of shared results, checked against the owner's signed manifest.

        PermissionError unless the owner's (signed) status says ``shared``;
        ResultsTamperedError (a PermissionError) if the folder holds anything but exactly what
        the owner shared. The check is made now: copy the files if you need them to stay as
        they are.
        """
        uid = job_uid(job)
        results = self.job_dir(uid) / "results"
        status, _ = self.status_of(uid)  # the owner's record, or its signed mirror
        try:
            if status != JobStatus.SHARED:
                raise ResultsNotSharedError(status)
            if results.is_symlink():
                raise ResultsTamperedError(f"{results} is a symlink")
            verify_results(self.network, self.host, uid, results, reader=self.client.email)
        except ResultsNotSharedError:
            raise PermissionError(
                f"the results of job {uid} have not been shared by {self.host} yet "
                f"(status: {status}); results leave a datasite only when its owner runs "
                "session.job.share_results(job)"
            ) from None
        except ResultsTamperedError as exc:
            raise ResultsTamperedError(
                f"refusing the results of job {uid}: {exc}. Someone other than {self.host} "
                f"wrote into the job's folder; do not use these files, ask {self.host} to share "
                "again"
            ) from None
        return results

    def wait_for(
        self,
        status: str | Iterable[str] = "pending_code_review",
        timeout: float = 300.0,
        poll: float = 0.5,
        count: int = 1,
    ) -> list[Job]:
        """Wait until at least ``count`` jobs have ``status`` and return them, or TimeoutError."""
        wanted = status_set(status)
        found: list[Job] = []

        def check() -> bool:
            nonlocal found
            found = self.get_all(status=wanted)
            return len(found) >= count

        wait_until(
            self.inbox,
            check,
            timeout,
            poll,
            lambda: (
                f"{len(found)} of {count} job(s) with status {sorted(wanted)} on "
                f"{self.host} after {timeout:g} s"
            ),
        )
        return found

    def wait(
        self,
        job: JobRef,
        status: str | Iterable[str] = TERMINAL,
        timeout: float = 300.0,
        poll: float = 0.5,
    ) -> Job:
        """Wait until ``job`` has one of ``status``; TimeoutError if not within ``timeout``.

        A job that gets rejected while waiting for another status raises JobStateError; one
        refused at intake raises JobRefusedError.
        """
        wanted = status_set(status)
        uid = job.uid if isinstance(job, Job) else str(job)
        current = self.get(uid)
        seen = ["?"]

        def check() -> bool:
            st, reason = self.status_of(uid)
            seen[0] = st
            if st in wanted:
                return True
            if st == JobStatus.REJECTED:
                raise JobStateError(f"job {uid} was rejected by {self.host}: {reason}")
            if st == JobStatus.REFUSED:
                raise JobRefusedError(f"job {uid} was refused by {self.host}: {reason}")
            return False

        wait_until(
            self.job_dir(uid),
            check,
            timeout,
            poll,
            lambda: (
                f"job {uid} is still {seen[0]} after {timeout:g} s (waiting for {sorted(wanted)})"
            ),
        )
        return current
