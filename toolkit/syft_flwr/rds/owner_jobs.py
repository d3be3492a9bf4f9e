"""The data owner's jobs on its own datasite: intake, review, approve/reject, run, share.

Every decision reads and updates the owner's :class:`~syft_flwr.rds.records.JobRecord` in its
:class:`~syft_flwr.rds.store.JobStore`, is written to the audit log, and is mirrored (signed)
into the job's inbox folder for the submitter.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.network.atomic import TMP_PREFIX, atomic_write_json
from syft_flwr.network.safe_read import open_plain_dir
from syft_flwr.rds._files import copy_regular_files, utc_now
from syft_flwr.rds.audit import AuditLog, audited_refusal
from syft_flwr.rds.client import RDSClient
from syft_flwr.rds.code import SubmissionLimits, check_entrypoint, read_code, scan_code
from syft_flwr.rds.datasets import DatasetAPI, mock_files_of, private_data_dir
from syft_flwr.rds.errors import JobNotFoundError, JobStateError
from syft_flwr.rds.intake import IntakePolicy
from syft_flwr.rds.jobs import LOG_PREVIEW_CHARS, Job, JobRef, JobsView, job_uid
from syft_flwr.rds.mirror import StatusMirror
from syft_flwr.rds.owner_intake import OwnerIntake
from syft_flwr.rds.records import RUNNABLE, SHAREABLE, JobRecord, JobStatus, status_set
from syft_flwr.rds.review import source_problems
from syft_flwr.rds.runner import DEFAULT_TIMEOUT, RunHandle, check_run_options, start_run
from syft_flwr.rds.signed import write_manifest
from syft_flwr.rds.store import JobStore
from syft_flwr.sandbox.limits import DEFAULT_LIMITS, SandboxLimits, load_dataset_limits
from syft_flwr.syftbox.permissions import grant_job_inbox, share_job_results
from syft_flwr.syftbox.workspace import is_syftbox

#: what ``run.json`` of shared results tells about the run
SHARED_RUN_FIELDS = (
    "n",
    "kind",
    "status",
    "reason",
    "exit_code",
    "started_at",
    "finished_at",
    "duration_s",
)


class OwnerJobs(JobsView):
    """``session.job`` of the datasite's owner: every job in its inbox, and its decisions."""

    def __init__(
        self,
        client: RDSClient,
        limits: SubmissionLimits,
        intake: IntakePolicy,
        store: JobStore,
        audit: AuditLog,
    ):
        super().__init__(client, client.email, limits, intake)
        self.store = store
        self.audit = audit
        self.mirror = StatusMirror(client.network, client.email, client.identity)
        self._intake = OwnerIntake(
            client.network, client.email, store, audit, self.mirror, intake, limits
        )

    # -- reading ------------------------------------------------------------------------------
    def _record(self, job: JobRef) -> JobRecord:
        """The owner's record of ``job``; JobRefusedError / JobNotFoundError if there is none."""
        uid = job_uid(job)
        record = self._intake.record(uid)
        if record is None:
            self._intake.raise_if_refused(uid)
            raise JobNotFoundError(f"no job {uid!r} in {self.inbox}")
        return record

    def status_of(self, uid: str) -> tuple[str, str | None]:
        """(status, reason) from the owner's own record."""
        record = self._intake.record(uid)
        if record is None:
            self._intake.raise_if_refused(uid)
            raise JobNotFoundError(f"no job {uid!r} on {self.host}")
        return record.status, record.reason

    def get(self, uid: JobRef) -> Job:
        """The job ``uid`` (its first sighting is recorded, see :meth:`get_all`).

        JobRefusedError (a JobNotFoundError) if it was refused at intake.
        """
        uid = job_uid(uid)
        record = self._intake.record(uid)
        if record is None:
            self._intake.raise_if_refused(uid)
            raise JobNotFoundError(f"no job {uid!r} on {self.host} visible to {self.client.email}")
        return self.job_from_request(record.request)

    def get_all(self, status: str | Iterable[str] | None = None) -> list[Job]:
        """Jobs in the inbox, oldest first, optionally only those with ``status``.

        A job with no record yet is checked now (its first sighting): a valid signed
        submission is recorded (and audited) as ``pending_code_review``; anything else is
        refused (see :meth:`refused`) and not listed.
        """
        wanted = status_set(status)
        uids, other = self.entries()
        for name in other:
            self._intake.refuse_odd_entry(name)
        jobs = []
        for uid in sorted(set(uids) | set(self.store.job_ids())):
            record = self._intake.record(uid)
            if record is not None and (wanted is None or record.status in wanted):
                jobs.append(self.job_from_request(record.request))
        return jobs

    def refused(self) -> list[dict[str, Any]]:
        """The owner's records of refused inbox entries, oldest first.

        Each has ``key`` (the job id, or ``entry-<hash>`` for an entry not named like one),
        ``entry`` (its name in the inbox), ``reason`` (a code of
        :data:`syft_flwr.rds.intake.REFUSAL_REASONS`), ``message``, ``refused_at``,
        ``claimed_submitter`` (unverified) and ``quarantine`` (where the entry was moved).
        """
        return self.store.refused_records()

    # -- the owner's decisions ----------------------------------------------------------------
    def job_from_request(self, req: dict[str, Any]) -> Job:
        """The Job view of a request; its ``code_path`` is the owner's own copy of the code,
        taken at intake: what :meth:`Job.show_user_code` shows and what runs."""
        job = super().job_from_request(req)
        job.code_path = self._intake.code_dir(job.uid)
        return job

    def approve(self, job: JobRef) -> Job:
        """Approve a job pending review; pins the hash of its code (the owner's copy taken at
        intake, which is what was reviewed and what will run)."""
        record = self._record(job)
        uid = record.job_id
        if record.status != JobStatus.PENDING_CODE_REVIEW:
            raise JobStateError(
                f"job {uid} is {record.status}, not pending_code_review: only a job pending "
                "review can be approved"
            )
        try:
            current = self._intake.check_copy(record, record.seen_sha256)
            code = self._intake.code_dir(uid)
            files = scan_code(code, self.limits)
            problems = [p for rel in files for p in source_problems(rel, read_code(code, rel))]
        except (ValueError, OSError) as exc:
            raise self._refuse(uid, "approve", f"refusing to approve job {uid}: {exc}") from exc
        if problems:
            raise self._refuse(
                uid,
                "approve",
                f"refusing to approve job {uid}: {'; '.join(problems[:5])}. Reject it and ask "
                "the submitter for plain UTF-8 source",
            )
        try:
            check_entrypoint(record.entrypoint)  # a record taken in under older rules
        except ValueError as exc:
            raise self._refuse(uid, "approve", f"refusing to approve job {uid}: {exc}") from exc
        if record.entrypoint not in files:
            raise self._refuse(
                uid, "approve", f"job {uid} has no entrypoint {record.entrypoint!r}", ValueError
            )

        def approve(rec: JobRecord) -> None:
            if rec.status != JobStatus.PENDING_CODE_REVIEW:
                raise JobStateError(f"job {uid} became {rec.status} meanwhile")
            rec.pinned_sha256 = current
            rec.set_status(JobStatus.APPROVED)
            self.audit.append(
                "approve",
                job_id=uid,
                name=rec.name,
                submitter=rec.submitter,
                code_sha256=current,
            )

        record = self.store.update(uid, approve)
        self.mirror.publish(record)
        if is_syftbox(self.network):  # the aggregator's messages must not be refused by the sync
            grant_job_inbox(self.network, self.host, self.job_dir(uid) / "code")
        logger.info(f"approved job {record.name!r} ({uid}) from {record.submitter}")
        return self.job_from_request(record.request)

    def reject(self, job: JobRef, reason: str) -> Job:
        """Reject a job pending review (or approved but not yet run); the submitter sees why."""
        record = self._record(job)
        uid = record.job_id
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("give a reason: the submitter reads it to fix the job")
        allowed = (JobStatus.PENDING_CODE_REVIEW, JobStatus.APPROVED)
        if record.status not in allowed:
            raise JobStateError(
                f"job {uid} is {record.status}: only a job pending review or approved (not yet "
                "run) can be rejected"
            )

        def reject(rec: JobRecord) -> None:
            if rec.status not in allowed:
                raise JobStateError(f"job {uid} became {rec.status} meanwhile")
            rec.set_status(JobStatus.REJECTED, reason)
            self.audit.append(
                "reject", job_id=uid, name=rec.name, submitter=rec.submitter, reason=reason
            )

        record = self.store.update(uid, reject)
        self.mirror.publish(record)
        logger.info(f"rejected job {record.name!r} ({uid}): {reason}")
        return self.job_from_request(record.request)

    def _refuse(
        self, uid: str, action: str, message: str, exc_type: type[Exception] = PermissionError
    ) -> Exception:
        return audited_refusal(self.audit, uid, action, message, exc_type)

    # -- running ------------------------------------------------------------------------------
    def run(
        self,
        job: JobRef,
        kind: str,
        *,
        blocking: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
        sandbox: bool = True,
        limits: SandboxLimits | None = None,
    ) -> RunHandle:
        """Run an approved job on ``kind`` ("private" or "mock") data; see
        ``Session.run_private``. The sandbox's limits are the defaults, overridden by the
        dataset's (``save_dataset_limits``), overridden by ``limits``."""
        extra = check_run_options(kind, timeout, env)
        record = self._record(job)
        uid = record.job_id
        if record.status not in RUNNABLE:
            hint = {
                JobStatus.PENDING_CODE_REVIEW: "review and approve it first (session.job.approve)",
                JobStatus.REJECTED: "it was rejected",
                JobStatus.RUNNING: "it is already running",
            }.get(JobStatus(record.status), "")
            raise JobStateError(f"job {uid} is {record.status} and cannot run: {hint}")
        if kind == "private":
            data_dir = private_data_dir(self.network, self.host, record.dataset_name)
        else:
            data_dir = self._mock_dir(record.dataset_name)
            try:  # mock data sits in a shared folder: regular files only, no link followed
                mock_files_of(data_dir)
            except (ValueError, OSError) as exc:
                raise self._refuse(
                    uid,
                    "run",
                    f"refusing to run job {uid} on mock data: {exc}. Publish the dataset "
                    "again (session.dataset.create(..., overwrite=True))",
                ) from exc
        return start_run(
            self.store,
            self.audit,
            self.mirror,
            uid,
            kind,
            data_dir,
            config_path=self.client.config_path,
            limits=self.limits,
            blocking=blocking,
            timeout=timeout,
            env=extra,
            sandbox=sandbox,
            sandbox_limits=DEFAULT_LIMITS.over(
                load_dataset_limits(self.network, self.host, record.dataset_name)
            ).over(limits),
        )

    def _mock_dir(self, dataset_name: str) -> Path:
        """The mock folder of the dataset (DatasetNotFoundError lists the ones that exist)."""
        return DatasetAPI(self.client, self.host).get(dataset_name).get_mock_path()

    def show_logs(
        self, job: JobRef, run: int | None = None, max_chars: int = LOG_PREVIEW_CHARS
    ) -> str:
        """Print (and return) the stdout and stderr of the latest run (or run ``run``)."""
        record = self._record(job)
        r = record.run(run)
        parts = [
            f"job {record.job_id} run {r.n} ({r.kind} data): {r.status}"
            + (f", exit code {r.exit_code}" if r.exit_code is not None else "")
            + (f" ({r.reason})" if r.reason else "")
        ]
        for stream in ("stdout", "stderr"):
            path = Path(getattr(r, stream))
            text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
            if len(text) > max_chars:
                text = (
                    f"[... showing the last {max_chars} of {len(text)} characters; full log "
                    f"at {path}]\n" + text[-max_chars:]
                )
            parts.append(f"---- {stream} ----\n{text.rstrip()}")
        out = "\n".join(parts)
        print(out)
        return out

    # -- sharing ------------------------------------------------------------------------------
    def share_results(self, job: JobRef, run: int | None = None) -> Path:
        """Publish the output/ and logs of the latest finished run to the job's results/.

        The folder carries a ``manifest.json`` signed by the owner (every file's sha256), which
        :meth:`get_results` checks.
        """
        record = self._record(job)
        uid = record.job_id
        if record.status not in SHAREABLE:
            raise JobStateError(
                f"job {uid} is {record.status}: run it first (session.run_private(job)); "
                "results can be shared once a run has finished"
            )
        shared_run = record.run(run)
        job_dir = self.real_job_dir(uid)
        if not job_dir.is_dir():
            raise FileNotFoundError(
                f"the inbox folder {job_dir} of job {uid} is gone: there is nowhere to share to"
            )
        # Staged in the owner's private folder, then moved in through a descriptor of the
        # inbox folder: nothing is written through a symlink someone swaps in meanwhile.
        staging = self.store.job_dir(uid) / f"{TMP_PREFIX}{uuid.uuid4().hex}-results"
        skipped = copy_regular_files(Path(shared_run.output_dir), staging / "output")
        (staging / "logs").mkdir(parents=True)
        for stream in ("stdout", "stderr"):
            log = Path(getattr(shared_run, stream))
            if log.exists():
                shutil.copyfile(log, staging / "logs" / f"{stream}.log")
        info: dict[str, Any] = {k: getattr(shared_run, k) for k in SHARED_RUN_FIELDS}
        info.update({"job_id": uid, "shared_at": utc_now(), "skipped": skipped})
        atomic_write_json(staging / "run.json", info)
        write_manifest(
            self.client.identity,
            staging,
            job_id=uid,
            host=self.host,
            run=shared_run.n,
            shared_at=info["shared_at"],
        )
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())

        def shared(rec: JobRecord) -> None:
            if rec.status not in SHAREABLE:
                raise JobStateError(f"job {uid} became {rec.status} meanwhile")
            # Audited before anything leaves: a log that cannot be extended blocks sharing.
            self.audit.append(
                "share",
                job_id=uid,
                run=shared_run.n,
                kind=shared_run.kind,
                files=files,
                skipped=skipped,
            )
            _publish(job_dir, self.network.datasite(self.host), staging, "results")
            rec.shared_run = shared_run.n
            rec.set_status(JobStatus.SHARED)

        if is_syftbox(self.network):  # readable by the submitter only, before it is there
            share_job_results(self.network, self.host, uid, record.submitter)
        try:
            record = self.store.update(uid, shared)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.mirror.publish(record)
        logger.info(f"shared the results of job {record.name!r} ({uid}) run {shared_run.n}")
        return job_dir / "results"


def _publish(job_dir: Path, datasite: Path, staging: Path, name: str) -> None:
    """Move ``staging`` to ``job_dir/name``, replacing what is there (an earlier share, or
    something planted), without following a symlink in place of ``job_dir`` or of any folder
    between it and ``datasite``."""
    try:
        fd = open_plain_dir(job_dir, datasite)
    except OSError as exc:
        raise PermissionError(
            f"{job_dir} is not a plain folder any more ({exc}): not sharing into it"
        ) from exc
    try:
        old = f"{TMP_PREFIX}old-{uuid.uuid4().hex}-{name}"
        try:
            os.rename(name, old, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            old = None
        os.rename(staging, name, dst_dir_fd=fd)
        if old is not None:
            if stat.S_ISDIR(os.stat(old, dir_fd=fd, follow_symlinks=False).st_mode):
                shutil.rmtree(old, dir_fd=fd, ignore_errors=True)
            else:
                os.unlink(old, dir_fd=fd)
    finally:
        os.close(fd)
