"""The data owner's intake: the first sighting of each inbox entry, and refusals.

The owner accepts an inbox entry (its *first sighting*) only if it is a submission signed by
the submitter it names, for this owner, recently, with exactly the signed code
(:func:`syft_flwr.rds.intake.validate_submission`) and a job id never seen before. Anything
else is refused: audited, recorded, moved to quarantine, and never listed. Accepted entries
become a :class:`~syft_flwr.rds.records.JobRecord` in the :class:`~syft_flwr.rds.store.JobStore`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path

from loguru import logger

from syft_flwr.network.layout import Network
from syft_flwr.network.safe_read import is_plain_path, open_plain_dir
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.audit import AuditLog
from syft_flwr.rds.code import SubmissionLimits, code_sha256, copy_code
from syft_flwr.rds.errors import JobRefusedError
from syft_flwr.rds.intake import (
    IntakePolicy,
    SubmissionIncompleteError,
    SubmissionRefusedError,
    read_request,
    validate_submission,
)
from syft_flwr.rds.mirror import StatusMirror
from syft_flwr.rds.records import JobRecord, JobStatus
from syft_flwr.rds.store import JobStore

ORPHANED_REASON = "interrupted: the data owner's process that ran the job ended before it did"


class OwnerIntake:
    """Turns ``host``'s inbox entries into job records (or refusals), once each."""

    def __init__(
        self,
        network: Network,
        host: str,
        store: JobStore,
        audit: AuditLog,
        mirror: StatusMirror,
        policy: IntakePolicy,
        limits: SubmissionLimits,
    ):
        self.network = network
        self.host = host
        self.store = store
        self.audit = audit
        self.mirror = mirror
        self.policy = policy
        self.limits = limits
        self._warned: set[str] = set()

    @property
    def inbox(self) -> Path:
        return self.network.jobs_dir(self.host)

    def inbox_is_plain(self) -> bool:
        """Whether the jobs inbox is reached through plain folders of the datasite only."""
        plain = is_plain_path(self.inbox, self.network.datasite(self.host))
        if not plain and "inbox" not in self._warned:
            self._warned.add("inbox")
            logger.error(
                f"{self.inbox} is not a plain folder of {self.host}'s datasite (a symlink was "
                "put in its place or above it): nothing in it is read or moved"
            )
        return plain

    def record(self, uid: str) -> JobRecord | None:
        """The owner's record of ``uid``; None if there is no such job (or it was refused).

        On the first sighting of an inbox entry it is checked. From then on the owner acts on
        its own copy of the request (which dataset, which entrypoint), never on the inbox's
        request, which others can rewrite. A run whose watcher died is recorded as failed, and
        the submitter's mirror is brought in line with the record.
        """
        record = self._recovered(uid)
        if record is None:
            if self.store.is_refused(uid):
                return None
            record = self._first_sighting(uid)
            if record is None:
                return None
        self.mirror.sync(record)
        return record

    def raise_if_refused(self, uid: str) -> None:
        """JobRefusedError if ``uid`` was refused at intake."""
        refusal = self.store.load_refused(uid)
        if refusal is not None:
            raise JobRefusedError(
                f"job {uid} was refused at intake ({refusal.get('reason')}): "
                f"{refusal.get('message')}"
            )

    def _recovered(self, uid: str) -> JobRecord | None:
        """The stored record, with an orphaned run (its watcher process is gone) failed."""
        record = self.store.load(uid)
        if record is None or not record.orphaned:
            return record

        def fail(rec: JobRecord) -> None:
            if rec.orphaned:
                run = rec.runs[-1]
                run.status, run.reason, run.finished_at = "failed", ORPHANED_REASON, utc_now()
                rec.set_status(JobStatus.FAILED, ORPHANED_REASON)
                self.audit.append(
                    "run_end", job_id=uid, run=run.n, status="failed", reason=ORPHANED_REASON
                )

        record = self.store.update(uid, fail)
        self.mirror.publish(record)
        return record

    def _first_sighting(self, uid: str) -> JobRecord | None:
        """Accept (pending review) or refuse the inbox entry ``uid``, once, under its lock."""
        job_dir = self.network.job_inbox_dir(self.host, uid)
        if not os.path.lexists(job_dir):
            return None
        if not self.inbox_is_plain():
            return None
        with self.store.locked(uid):
            record = self.store.load(uid)
            if record is not None:
                return record
            if self.store.is_refused(uid):
                return None
            if self.store.seen_path(uid).exists():
                self._refuse_entry(
                    uid,
                    uid,
                    "replayed",
                    f"a job with id {uid} was already accepted by {self.host} once (its records "
                    "were removed since): this is a replay of an old submission",
                )
                return None
            try:
                accepted = validate_submission(
                    self.network, self.host, job_dir, policy=self.policy, limits=self.limits
                )
            except SubmissionIncompleteError as exc:
                waited = _age_s(job_dir)
                if waited < self.policy.incomplete_grace_s:
                    if uid not in self._warned:
                        self._warned.add(uid)
                        logger.warning(f"job {uid} is not complete yet ({exc}); waiting for it")
                    return None
                self._refuse_entry(uid, uid, exc.reason, f"{exc} ({waited:.0f} s after it came)")
                return None
            except SubmissionRefusedError as exc:
                self._refuse_entry(uid, uid, exc.reason, str(exc))
                return None
            except Exception as exc:  # noqa: BLE001 - a bug must not let an entry through
                logger.exception(f"checking the submission {job_dir} failed")
                self._refuse_entry(uid, uid, "internal_error", f"the check failed: {exc!r}")
                return None
            try:
                self.keep_copy(uid, accepted.code_sha256)
            except (ValueError, OSError) as exc:
                self._refuse_entry(uid, uid, "code_mismatch", f"the code is refused: {exc}")
                return None
            req = accepted.request
            record = JobRecord(
                job_id=uid,
                request=req,
                seen_sha256=accepted.code_sha256,
                submitter_key=accepted.key_fingerprint,
            )
            record.set_status(JobStatus.PENDING_CODE_REVIEW)
            # Audited before the record exists: a log that cannot be extended blocks intake.
            self.audit.append(
                "submission_seen",
                job_id=uid,
                name=req["name"],
                submitter=req["submitter"],
                submitter_key=accepted.key_fingerprint,
                dataset=req["dataset_name"],
                entrypoint=req["entrypoint"],
                code_sha256=accepted.code_sha256,
                signed_at=req["created_at"],
            )
            self.store.create(record)
            return record

    def code_dir(self, uid: str) -> Path:
        """The owner's copy of the job's code, taken at intake: what is reviewed and run."""
        return self.network.submitted_code_dir(self.host, uid)

    def keep_copy(self, uid: str, sha256: str) -> Path:
        """Copy the inbox's code of ``uid`` into the owner's private area; ValueError unless
        what was copied hashes to ``sha256`` (the signed hash checked at intake)."""
        dest = self.code_dir(uid)
        shutil.rmtree(dest, ignore_errors=True)
        source = self.network.job_inbox_dir(self.host, uid) / "code"
        try:
            copied = copy_code(source, dest, self.limits)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        if copied != sha256:
            shutil.rmtree(dest, ignore_errors=True)
            raise ValueError(
                f"the code of job {uid} changed while it was taken in (hash {copied[:12]}…, "
                f"signed {sha256[:12]}…)"
            )
        return dest

    def reviewed_code(self, record: JobRecord) -> Path:
        """The owner's copy of ``record``'s code (taken again from the inbox, only if it
        hashes to what intake saw, for a job accepted before copies were kept)."""
        dest = self.code_dir(record.job_id)
        if not dest.is_dir():
            with self.store.locked(record.job_id):
                if not dest.is_dir():
                    self.keep_copy(record.job_id, record.seen_sha256)
        return dest

    def check_copy(self, record: JobRecord, expected: str) -> str:
        """The hash of the owner's copy; ValueError unless it is ``expected``."""
        current = code_sha256(self.reviewed_code(record), self.limits)
        if current != expected:
            raise ValueError(
                f"the owner's copy of job {record.job_id}'s code changed (hash {current[:12]}… "
                f"now, {expected[:12]}… when it was taken in)"
            )
        return current

    def refuse_odd_entry(self, name: str) -> None:
        """Refuse an inbox entry that is not named like a job id (it cannot become one)."""
        key = "entry-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
        with self.store.intake_locked():
            if self.store.is_refused(key) or not os.path.lexists(self.inbox / name):
                return
            self._refuse_entry(
                key, name, "not_a_job_folder", f"{name!r} in {self.inbox} is not named like a job"
            )

    def _refuse_entry(self, key: str, name: str, reason: str, message: str) -> None:
        """Audit, record and quarantine the refused inbox entry ``name`` (caller holds a lock)."""
        entry = self.inbox / name
        claimed = _claimed_submitter(entry)
        # Audited first: a log that cannot be extended stops the refusal (nothing moves).
        self.audit.append(
            "submission_refused",
            job_id=key,
            entry=name,
            reason=reason,
            detail=message,
            claimed_submitter=claimed,
        )
        quarantine = self.store.quarantine_dir / key
        if os.path.lexists(quarantine):
            quarantine = self.store.quarantine_dir / f"{key}-{uuid.uuid4().hex[:8]}"
        self.store.save_refused(
            {
                "key": key,
                "entry": name,
                "reason": reason,
                "message": message,
                "refused_at": utc_now(),
                "claimed_submitter": claimed,
                "quarantine": str(quarantine),
            }
        )
        try:
            quarantine.parent.mkdir(parents=True, exist_ok=True)
            self._move_out(name, quarantine)
        except OSError as exc:
            logger.error(f"could not move the refused entry {entry} to {quarantine}: {exc}")
        if key == name:  # tell the submitter why: a signed tombstone in a fresh folder
            try:
                self._mkdir_in_inbox(name)  # fails if anything (e.g. a symlink) took the name
                self.mirror.tombstone(name, message)
            except OSError as exc:
                logger.warning(f"could not tell the submitter of {name} it was refused: {exc}")
        logger.warning(f"refused inbox entry {name!r} of {self.host} ({reason}): {message}")

    def _inbox_fd(self) -> int:
        """The jobs inbox opened one folder at a time from the datasite (no symlink followed)."""
        return open_plain_dir(self.inbox, self.network.datasite(self.host))

    def _move_out(self, name: str, quarantine: Path) -> None:
        """Rename the entry ``name`` (itself, never what a symlink points to) out of the inbox
        into ``quarantine``; OSError if the inbox is not a plain folder or the private area is
        on another file system (the entry then stays where it is)."""
        fd = self._inbox_fd()
        try:
            os.rename(name, quarantine, src_dir_fd=fd)
        finally:
            os.close(fd)

    def _mkdir_in_inbox(self, name: str) -> None:
        fd = self._inbox_fd()
        try:
            os.mkdir(name, dir_fd=fd)
        finally:
            os.close(fd)


def _age_s(path: Path) -> float:
    """Seconds since ``path`` (or its request.json) last changed."""
    times = []
    for p in (path, path / "request.json"):
        with contextlib.suppress(OSError):
            times.append(os.lstat(p).st_mtime)
    return time.time() - max(times) if times else float("inf")


def _claimed_submitter(entry: Path) -> str | None:
    """Who a refused entry says it is from (unverified; for the record only)."""
    try:
        document = read_request(entry, 1024 * 1024)
        claimed = document.get("submitter") if isinstance(document, dict) else None
    except (SubmissionRefusedError, OSError, ValueError):
        return None
    return claimed[:200] if isinstance(claimed, str) else None
