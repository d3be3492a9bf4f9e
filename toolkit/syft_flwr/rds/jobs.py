"""Jobs: submission into a datasite's inbox, the data owner's review, results going back.

```
datasites/<do>/app_data/rds/jobs/<job_id>/   written by the submitter: code/, request.json
                                             (signed by the submitter, see rds/intake.py)
                                             written by the data owner: status.json (a signed
                                             mirror for the submitter), results/ (after
                                             sharing, with a signed manifest.json)
private/<do>/rds/jobs/<job_id>/state.json    the data owner's authoritative state
private/<do>/rds/refused/<key>.json          entries refused at intake, and why
private/<do>/rds/quarantine/<key>/           the refused entries, moved out of the inbox
```

The data owner accepts an inbox entry (its *first sighting*) only if it is a submission
signed by the submitter it names, for this data owner, recently, with exactly the signed code
(:func:`syft_flwr.rds.intake.validate_submission`) and a job id never seen before. Anything
else is refused: audited, recorded, moved to quarantine, and never listed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr.crypto import SignatureError, split_signature, verify_document
from syft_flwr.network.atomic import TMP_PREFIX, atomic_write_json, is_temporary
from syft_flwr.network.layout import validate_name
from syft_flwr.rds._files import (
    copy_regular_files,
    open_dir_nofollow,
    utc_now,
    wait_until,
    write_json_at,
)
from syft_flwr.rds.code import check_entrypoint, code_sha256, copy_code, render_code, scan_code
from syft_flwr.rds.errors import JobNotFoundError, JobRefusedError, JobStateError
from syft_flwr.rds.intake import (
    REQUEST_DOMAIN,
    REQUEST_VERSION,
    SubmissionIncompleteError,
    SubmissionRefusedError,
    check_request_fields,
    read_request,
    sign_request,
    validate_submission,
)
from syft_flwr.rds.signed import (
    STATUS_FILE,
    ResultsNotSharedError,
    ResultsTamperedError,
    mirror_says,
    read_status,
    status_document,
    verify_results,
    write_manifest,
)
from syft_flwr.rds.state import TERMINAL, JobStatus, orphaned_run, set_status, status_set

if TYPE_CHECKING:
    from syft_flwr.rds.server import Session

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
    _api: JobAPI = field(repr=False)

    @property
    def status(self) -> str:
        """The job's current status, read afresh (the owner's record for the owner, the
        owner-signed mirror for a guest): pending_code_review, approved, rejected, running,
        completed, failed or shared."""
        return self._api._status_of(self.uid)[0]

    @property
    def reason(self) -> str | None:
        """Why the job was rejected or failed (None otherwise)."""
        return self._api._status_of(self.uid)[1]

    @property
    def results_path(self) -> Path:
        """Where shared results appear in the job's folder (use ``session.job.get_results``, which
        checks the owner's signature, rather than reading it directly)."""
        return self.code_path.parent / "results"

    def show_user_code(self) -> str:
        """Print every file of the job's code under a header with its name; return the text."""
        text = render_code(self.code_path, self._api._session.limits)
        print(text)
        return text

    def __repr__(self) -> str:
        return (
            f"Job(uid={self.uid!r}, name={self.name!r}, dataset={self.dataset_name!r}, "
            f"entrypoint={self.entrypoint!r}, submitter={self.submitter!r}, host={self.host!r}, "
            f"status={self.status!r})"
        )


JobRef = Job | str


class JobAPI:
    """``session.job`` (alias ``session.jobs``): submit, list, review, share, fetch results."""

    def __init__(self, session: Session):
        self._session = session
        self._warned: set[str] = set()

    # -- paths --------------------------------------------------------------------------------
    @property
    def inbox(self) -> Path:
        s = self._session
        return s.network.jobs_dir(s.host)

    def _job_dir(self, uid: str) -> Path:
        return self.inbox / validate_name(uid, "job uid")

    def _real_job_dir(self, uid: str) -> Path:
        """The inbox folder of ``uid``; PermissionError if it was replaced by a symlink or file.

        The owner writes into and reads code from this folder: a link planted there would make
        it read or write somewhere else.
        """
        job_dir = self._job_dir(uid)
        if job_dir.is_symlink() or (job_dir.exists() and not job_dir.is_dir()):
            raise PermissionError(
                f"{job_dir} is no longer a plain folder (a symlink or file was put in its place): "
                "someone other than the submitter wrote into the inbox; reject the job"
            )
        return job_dir

    # -- submission ---------------------------------------------------------------------------
    def submit(
        self,
        name: str,
        user_code_path: Path | str,
        dataset_name: str,
        entrypoint: str | None = None,
        description: str = "",
    ) -> Job:
        """Copy the code into the host's job inbox for review.

        ``user_code_path`` is a project folder (``entrypoint`` defaults to ``main.py``) or a
        single script (the entrypoint is its name). Everything is checked before anything is
        written: names, the dataset, the entrypoint, symlinks and sizes. The request is
        signed with this party's Ed25519 key (see :mod:`syft_flwr.rds.intake`).
        """
        s = self._session
        validate_name(name, "job name")
        validate_name(dataset_name, "dataset name")
        code = Path(user_code_path).expanduser()
        if not code.exists() and not code.is_symlink():
            raise FileNotFoundError(f"code {code} does not exist")
        if entrypoint is None:
            entrypoint = code.name if code.is_file() else "main.py"
        entrypoint = check_entrypoint(entrypoint)
        if not (s.network.dataset_dir(s.host, dataset_name) / "metadata.json").exists():
            known = ", ".join(d.name for d in s.dataset.get_all()) or "none"
            raise ValueError(
                f"{s.host} has no dataset {dataset_name!r} (available: {known}); "
                "submit against one of those"
            )
        files = scan_code(code, s.limits)
        if entrypoint not in files:
            raise ValueError(
                f"entrypoint {entrypoint!r} is not among the files of {code} "
                f"({', '.join(files[:10])}{', ...' if len(files) > 10 else ''})"
            )

        uid = new_job_id()
        self.inbox.mkdir(parents=True, exist_ok=True)
        staging = self.inbox / f"{TMP_PREFIX}{uuid.uuid4().hex}-{uid}"
        try:
            sha = copy_code(code, staging / "code", s.limits)
            payload = {
                "version": REQUEST_VERSION,
                "job_id": uid,
                "name": name,
                "dataset_name": dataset_name,
                "entrypoint": entrypoint,
                "submitter": s.client.email,
                "host": s.host,
                "code_sha256": sha,
                "files": files,
                "created_at": utc_now(),
                "description": description,
            }
            request = sign_request(s.client.identity, payload)
            atomic_write_json(staging / "request.json", request)
            staging.rename(self.inbox / uid)  # the job appears whole, or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info(f"submitted job {name!r} ({uid}) to {s.host} for review")
        return self._job_from_request(request)

    # -- reading ------------------------------------------------------------------------------
    def _read_request(self, uid: str) -> dict[str, Any] | None:
        """A guest's view of ``uid``: its request if it is this guest's own, signed by it.

        None for anything else (another party's job, a malformed or forged request).
        """
        s = self._session
        try:
            document = read_request(self.inbox / uid, s.intake.max_request_bytes)
            payload, _ = split_signature(document)
            check_request_fields(payload, uid, s.host, s.limits)
            if payload["submitter"] != s.client.email:
                return None
            verify_document(s.network, s.client.email, REQUEST_DOMAIN, document)
        except SubmissionIncompleteError:
            return None
        except (SubmissionRefusedError, SignatureError) as exc:
            self._warn(uid, f"ignoring job folder {self.inbox / uid}: {exc}")
            return None
        return document

    def _warn(self, uid: str, message: str) -> None:
        if uid not in self._warned:
            self._warned.add(uid)
            logger.warning(message)

    def _job_from_request(self, req: dict[str, Any]) -> Job:
        uid = req["job_id"]
        return Job(
            uid=uid,
            name=req["name"],
            dataset_name=req["dataset_name"],
            entrypoint=req["entrypoint"],
            submitter=req["submitter"],
            host=self._session.host,
            created_at=req["created_at"],
            description=str(req.get("description", "")),
            code_sha256=req["code_sha256"],
            code_path=self.inbox / uid / "code",
            _api=self,
        )

    def _entries(self) -> tuple[list[str], list[str]]:
        """Names in the inbox: (named like a job id, anything else); hidden names skipped."""
        if not self.inbox.is_dir():
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

    def _uids(self) -> list[str]:
        return self._entries()[0]

    def _visible(self, req: dict[str, Any]) -> bool:
        """Guests see only their own submissions; the owner sees all."""
        return self._session.is_admin or req["submitter"] == self._session.client.email

    def get(self, uid: str) -> Job:
        """The job ``uid`` (the owner records a first sighting, see :meth:`get_all`).

        JobRefusedError (a JobNotFoundError) if the owner refused it at intake.
        """
        if isinstance(uid, Job):
            uid = uid.uid
        validate_name(uid, "job uid")
        if self._session.is_admin:
            state = self._ensure_state(uid)
            req = state["request"] if state is not None else None
            if req is None:
                self._raise_if_refused(uid)
        else:
            req = self._read_request(uid)
            if req is None:
                self._raise_if_refused(uid)
        if req is None or not self._visible(req):
            raise JobNotFoundError(
                f"no job {uid!r} on {self._session.host} visible to {self._session.client.email}"
            )
        return self._job_from_request(req)

    def _raise_if_refused(self, uid: str) -> None:
        s = self._session
        if s.is_admin:
            record = s.store.load_refused(uid)
            if record is not None:
                raise JobRefusedError(
                    f"job {uid} was refused at intake ({record.get('reason')}): "
                    f"{record.get('message')}"
                )
            return
        try:
            status, reason = read_status(s.network, s.host, uid, self._job_dir(uid) / STATUS_FILE)
        except FileNotFoundError:
            return
        if status == JobStatus.REFUSED:
            raise JobRefusedError(f"job {uid} was refused by {s.host}: {reason}")

    def get_all(self, status: str | Iterable[str] | None = None) -> list[Job]:
        """Jobs in the inbox, oldest first, optionally only those with ``status``.

        For the owner, a job with no state yet is checked now (its first sighting): a valid
        signed submission is recorded (and audited) as ``pending_code_review``; anything else
        is refused (see :meth:`refused`) and not listed.
        """
        wanted = status_set(status)
        jobs = []
        if self._session.is_admin:
            uids, other = self._entries()
            for name in other:
                self._refuse_odd_entry(name)
            for uid in sorted(set(uids) | set(self._session.store.job_ids())):
                state = self._ensure_state(uid)
                if state is not None and (wanted is None or state["status"] in wanted):
                    jobs.append(self._job_from_request(state["request"]))
            return jobs
        for uid in self._uids():
            req = self._read_request(uid)
            if req is None or not self._visible(req):
                continue
            if wanted is None or self._status_of(uid)[0] in wanted:
                jobs.append(self._job_from_request(req))
        return jobs

    def refused(self) -> list[dict[str, Any]]:
        """The owner's records of refused inbox entries, oldest first.

        Each has ``key`` (the job id, or ``entry-<hash>`` for an entry not named like one),
        ``entry`` (its name in the inbox), ``reason`` (a code of
        :data:`syft_flwr.rds.intake.REFUSAL_REASONS`), ``message``, ``refused_at``,
        ``claimed_submitter`` (unverified) and ``quarantine`` (where the entry was moved).
        """
        self._session.require_admin("list refused submissions")
        return self._session.store.refused_records()

    def _status_of(self, uid: str) -> tuple[str, str | None]:
        s = self._session
        if s.is_admin:
            state = self._ensure_state(uid)
            if state is None:
                self._raise_if_refused(uid)
                raise JobNotFoundError(f"no job {uid!r} on {s.host}")
            return state["status"], state.get("reason")
        try:
            return read_status(s.network, s.host, uid, self._job_dir(uid) / STATUS_FILE)
        except FileNotFoundError:
            if not (self._job_dir(uid) / "request.json").exists():
                raise JobNotFoundError(f"no job {uid!r} on {s.host}") from None
            return str(JobStatus.PENDING_CODE_REVIEW), None  # the owner has not looked yet

    # -- the owner's state --------------------------------------------------------------------
    def _state(self, uid: str) -> dict[str, Any] | None:
        s = self._session
        state = s.store.load(uid)
        if state is not None and orphaned_run(state):
            reason = "interrupted: the data owner's process that ran the job ended before it did"

            def fail(st: dict[str, Any]) -> None:
                if orphaned_run(st):
                    run = st["runs"][-1]
                    run.update({"status": "failed", "reason": reason, "finished_at": utc_now()})
                    set_status(st, JobStatus.FAILED, reason)
                    s.audit.append(
                        "run_end", job_id=uid, run=run["n"], status="failed", reason=reason
                    )

            state = s.store.update(uid, fail)
            self._mirror(uid, state)
        return state

    def _ensure_state(self, uid: str) -> dict[str, Any] | None:
        """The owner's state of ``uid``; None if there is no such job (or it was refused).

        On the first sighting of an inbox entry it is checked (:meth:`_first_sighting`). From
        then on the owner acts on its own copy of the request (which dataset, which entrypoint),
        never on the inbox's request, which others can rewrite.
        """
        s = self._session
        state = self._state(uid)
        if state is None:
            if s.store.refused_path(uid).exists():
                return None
            state = self._first_sighting(uid)
            if state is None:
                return None
        self._sync_mirror(uid, state)
        return state

    def _first_sighting(self, uid: str) -> dict[str, Any] | None:
        """Accept (pending review) or refuse the inbox entry ``uid``, once, under its lock."""
        s = self._session
        job_dir = self._job_dir(uid)
        if not os.path.lexists(job_dir):
            return None
        with s.store.locked(uid):
            state = s.store.load(uid)
            if state is not None:
                return state
            if s.store.refused_path(uid).exists():
                return None
            if s.store.seen_path(uid).exists():
                self._refuse_entry(
                    uid,
                    uid,
                    "replayed",
                    f"a job with id {uid} was already accepted by {s.host} once (its records "
                    "were removed since): this is a replay of an old submission",
                )
                return None
            try:
                accepted = validate_submission(
                    s.network, s.host, job_dir, policy=s.intake, limits=s.limits
                )
            except SubmissionIncompleteError as exc:
                waited = _age_s(job_dir)
                if waited < s.intake.incomplete_grace_s:
                    self._warn(uid, f"job {uid} is not complete yet ({exc}); waiting for it")
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
            req = accepted.request
            st: dict[str, Any] = {
                "job_id": uid,
                "request": req,
                "first_seen_at": utc_now(),
                "seen_sha256": accepted.code_sha256,
                "pinned_sha256": None,
                "submitter_key": accepted.key_fingerprint,
                "runs": [],
                "history": [],
            }
            set_status(st, JobStatus.PENDING_CODE_REVIEW)
            # Audited before the state exists: a log that cannot be extended blocks intake.
            s.audit.append(
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
            atomic_write_json(s.store.state_path(uid), st)
            s.store.mark_seen(uid)
            return st

    def _refuse_odd_entry(self, name: str) -> None:
        """Refuse an inbox entry that is not named like a job id (it cannot become one)."""
        s = self._session
        key = "entry-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
        with s.store.intake_locked():
            if s.store.refused_path(key).exists() or not os.path.lexists(self.inbox / name):
                return
            self._refuse_entry(
                key, name, "not_a_job_folder", f"{name!r} in {self.inbox} is not named like a job"
            )

    def _refuse_entry(self, key: str, name: str, reason: str, message: str) -> None:
        """Audit, record and quarantine the refused inbox entry ``name`` (caller holds a lock)."""
        s = self._session
        entry = self.inbox / name
        claimed = _claimed_submitter(entry)
        # Audited first: a log that cannot be extended stops the refusal (nothing moves).
        s.audit.append(
            "submission_refused",
            job_id=key,
            entry=name,
            reason=reason,
            detail=message,
            claimed_submitter=claimed,
        )
        quarantine = s.store.quarantine_dir / key
        if os.path.lexists(quarantine):
            quarantine = s.store.quarantine_dir / f"{key}-{uuid.uuid4().hex[:8]}"
        record = {
            "key": key,
            "entry": name,
            "reason": reason,
            "message": message,
            "refused_at": utc_now(),
            "claimed_submitter": claimed,
            "quarantine": str(quarantine),
        }
        atomic_write_json(s.store.refused_path(key), record)
        try:
            quarantine.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(entry, quarantine)
        except OSError as exc:
            logger.error(f"could not move the refused entry {entry} to {quarantine}: {exc}")
        if key == name:  # tell the submitter why: a signed tombstone in a fresh folder
            try:
                os.mkdir(entry)  # fails if anything (e.g. a new symlink) took the name meanwhile
                self._write_mirror(name, {"status": str(JobStatus.REFUSED), "reason": message})
            except OSError as exc:
                logger.warning(f"could not tell the submitter of {name} it was refused: {exc}")
        logger.warning(f"refused inbox entry {name!r} of {s.host} ({reason}): {message}")

    def _sync_mirror(self, uid: str, state: dict[str, Any]) -> None:
        """Rewrite the inbox's status mirror unless it is ours and says what the state says."""
        s = self._session
        path = self._job_dir(uid) / STATUS_FILE
        if mirror_says(s.network, s.host, uid, path, state["status"], state.get("reason")):
            return
        self._mirror(uid, state)

    def _mirror(self, uid: str, state: dict[str, Any]) -> None:
        runs = state.get("runs") or []
        try:
            self._write_mirror(
                uid, {"status": state["status"], "reason": state.get("reason"), "runs": len(runs)}
            )
        except FileNotFoundError:
            pass  # the inbox folder is gone: nobody to tell
        except OSError as exc:  # a symlink or a file in its place
            self._warn(f"mirror-{uid}", f"not writing the status of job {uid}: {exc}")

    def _write_mirror(self, uid: str, fields: dict[str, Any]) -> None:
        """Write the signed status mirror into the inbox folder, never through a symlink."""
        s = self._session
        payload = {"job_id": uid, "updated_at": utc_now(), **fields}
        fd = open_dir_nofollow(self._job_dir(uid))
        try:
            write_json_at(fd, STATUS_FILE, status_document(s.client.identity, payload))
        finally:
            os.close(fd)

    def _owner_job(self, job: JobRef, action: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(uid, request, state) for an owner's action, from the owner's own records."""
        self._session.require_admin(action)
        uid = job.uid if isinstance(job, Job) else str(job)
        state = self._ensure_state(validate_name(uid, "job uid"))
        if state is None:
            self._raise_if_refused(uid)
            raise JobNotFoundError(f"no job {uid!r} in {self.inbox}")
        return uid, state["request"], state

    def _refuse(
        self, uid: str, action: str, message: str, exc_type: type[Exception] = PermissionError
    ) -> Exception:
        """Audit a refusal and return the exception to raise."""
        self._session.audit.append("refusal", job_id=uid, action=action, reason=message)
        return exc_type(message)

    # -- the owner's decisions ----------------------------------------------------------------
    def approve(self, job: JobRef) -> Job:
        """Approve a job pending review; pins the hash of its code as it is now."""
        uid, req, state = self._owner_job(job, "approve jobs")
        s = self._session
        if state["status"] != JobStatus.PENDING_CODE_REVIEW:
            raise JobStateError(
                f"job {uid} is {state['status']}, not pending_code_review: only a job pending "
                "review can be approved"
            )
        try:
            current = code_sha256(self._real_job_dir(uid) / "code", s.limits)
        except (ValueError, OSError) as exc:
            raise self._refuse(uid, "approve", f"refusing to approve job {uid}: {exc}") from exc
        if current != state["seen_sha256"]:
            raise self._refuse(
                uid,
                "approve",
                f"refusing to approve job {uid}: its code changed after it was submitted "
                f"(hash {state['seen_sha256'][:12]}… then, {current[:12]}… now). Reject it and "
                "ask the submitter to submit again",
            )
        if req["entrypoint"] not in scan_code(self._job_dir(uid) / "code", s.limits):
            raise self._refuse(
                uid, "approve", f"job {uid} has no entrypoint {req['entrypoint']!r}", ValueError
            )

        def approve(st: dict[str, Any]) -> None:
            if st["status"] != JobStatus.PENDING_CODE_REVIEW:
                raise JobStateError(f"job {uid} became {st['status']} meanwhile")
            st["pinned_sha256"] = current
            set_status(st, JobStatus.APPROVED)
            s.audit.append(
                "approve",
                job_id=uid,
                name=req["name"],
                submitter=req["submitter"],
                code_sha256=current,
            )

        state = s.store.update(uid, approve)
        self._mirror(uid, state)
        logger.info(f"approved job {req['name']!r} ({uid}) from {req['submitter']}")
        return self._job_from_request(req)

    def reject(self, job: JobRef, reason: str) -> Job:
        """Reject a job pending review (or approved but not yet run); the submitter sees why."""
        uid, req, state = self._owner_job(job, "reject jobs")
        s = self._session
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("give a reason: the submitter reads it to fix the job")
        allowed = (JobStatus.PENDING_CODE_REVIEW, JobStatus.APPROVED)
        if state["status"] not in allowed:
            raise JobStateError(
                f"job {uid} is {state['status']}: only a job pending review or approved (not yet "
                "run) can be rejected"
            )

        def reject(st: dict[str, Any]) -> None:
            if st["status"] not in allowed:
                raise JobStateError(f"job {uid} became {st['status']} meanwhile")
            set_status(st, JobStatus.REJECTED, reason)
            s.audit.append(
                "reject", job_id=uid, name=req["name"], submitter=req["submitter"], reason=reason
            )

        state = s.store.update(uid, reject)
        self._mirror(uid, state)
        logger.info(f"rejected job {req['name']!r} ({uid}): {reason}")
        return self._job_from_request(req)

    def _run_record(self, uid: str, state: dict[str, Any], run: int | None) -> dict[str, Any]:
        runs = state.get("runs") or []
        if not runs:
            raise JobStateError(f"job {uid} has not been run yet")
        if run is None:
            return runs[-1]
        for record in runs:
            if record["n"] == run:
                return record
        raise ValueError(f"job {uid} has no run {run} (runs: {[r['n'] for r in runs]})")

    def show_logs(
        self, job: JobRef, run: int | None = None, max_chars: int = LOG_PREVIEW_CHARS
    ) -> str:
        """Print (and return) the stdout and stderr of the latest run (or run ``run``)."""
        uid, _, state = self._owner_job(job, "read job logs")
        record = self._run_record(uid, state, run)
        parts = [
            f"job {uid} run {record['n']} ({record['kind']} data): {record['status']}"
            + (f", exit code {record['exit_code']}" if record.get("exit_code") is not None else "")
            + (f" ({record['reason']})" if record.get("reason") else "")
        ]
        for stream in ("stdout", "stderr"):
            path = Path(record[stream])
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

    def share_results(self, job: JobRef, run: int | None = None) -> Path:
        """Publish the output/ and logs of the latest finished run to the job's results/.

        The folder carries a ``manifest.json`` signed by the owner (every file's sha256), which
        :meth:`get_results` checks.
        """
        uid, req, state = self._owner_job(job, "share results")
        s = self._session
        shareable = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SHARED)
        if state["status"] not in shareable:
            raise JobStateError(
                f"job {uid} is {state['status']}: run it first (session.run_private(job)); "
                "results can be shared once a run has finished"
            )
        record = self._run_record(uid, state, run)
        job_dir = self._real_job_dir(uid)
        if not job_dir.is_dir():
            raise FileNotFoundError(
                f"the inbox folder {job_dir} of job {uid} is gone: there is nowhere to share to"
            )
        # Staged in the owner's private folder, then moved in through a descriptor of the
        # inbox folder: nothing is written through a symlink someone swaps in meanwhile.
        staging = s.store.job_dir(uid) / f"{TMP_PREFIX}{uuid.uuid4().hex}-results"
        skipped = copy_regular_files(Path(record["output_dir"]), staging / "output")
        (staging / "logs").mkdir(parents=True)
        for stream in ("stdout", "stderr"):
            if Path(record[stream]).exists():
                shutil.copyfile(record[stream], staging / "logs" / f"{stream}.log")
        info = {
            k: record.get(k)
            for k in (
                "n",
                "kind",
                "status",
                "reason",
                "exit_code",
                "started_at",
                "finished_at",
                "duration_s",
            )
        }
        info.update({"job_id": uid, "shared_at": utc_now(), "skipped": skipped})
        atomic_write_json(staging / "run.json", info)
        write_manifest(
            s.client.identity,
            staging,
            job_id=uid,
            host=s.host,
            run=record["n"],
            shared_at=info["shared_at"],
        )
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        results = job_dir / "results"

        def shared(st: dict[str, Any]) -> None:
            if st["status"] not in shareable:
                raise JobStateError(f"job {uid} became {st['status']} meanwhile")
            # Audited before anything leaves: a log that cannot be extended blocks sharing.
            s.audit.append(
                "share",
                job_id=uid,
                run=record["n"],
                kind=record["kind"],
                files=files,
                skipped=skipped,
            )
            _publish(job_dir, staging, "results")
            st["shared_run"] = record["n"]
            set_status(st, JobStatus.SHARED)

        try:
            state = s.store.update(uid, shared)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._mirror(uid, state)
        logger.info(f"shared the results of job {req['name']!r} ({uid}) run {record['n']}")
        return results

    # -- results and waiting ------------------------------------------------------------------
    def get_results(self, job: JobRef) -> Path:
        """The folder of shared results, checked against the owner's signed manifest.

        PermissionError unless the owner's (signed) status says ``shared``;
        ResultsTamperedError (a PermissionError) if the folder holds anything but exactly what
        the owner shared. The check is made now: copy the files if you need them to stay as
        they are.
        """
        s = self._session
        uid = validate_name(job.uid if isinstance(job, Job) else str(job), "job uid")
        results = self._job_dir(uid) / "results"
        status, _ = self._status_of(uid)  # the owner's state, or its signed mirror
        try:
            if status != JobStatus.SHARED:
                raise ResultsNotSharedError(status)
            if results.is_symlink():
                raise ResultsTamperedError(f"{results} is a symlink")
            verify_results(s.network, s.host, uid, results)
        except ResultsNotSharedError:
            raise PermissionError(
                f"the results of job {uid} have not been shared by {s.host} yet "
                f"(status: {status}); results leave a datasite only when its owner runs "
                "session.job.share_results(job)"
            ) from None
        except ResultsTamperedError as exc:
            raise ResultsTamperedError(
                f"refusing the results of job {uid}: {exc}. Someone other than {s.host} wrote "
                f"into the job's folder; do not use these files, ask {s.host} to share again"
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
                f"{self._session.host} after {timeout:g} s"
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
            st, reason = self._status_of(uid)
            seen[0] = st
            if st in wanted:
                return True
            if st == JobStatus.REJECTED:
                raise JobStateError(f"job {uid} was rejected by {self._session.host}: {reason}")
            if st == JobStatus.REFUSED:
                raise JobRefusedError(f"job {uid} was refused by {self._session.host}: {reason}")
            return False

        wait_until(
            self._job_dir(uid),
            check,
            timeout,
            poll,
            lambda: (
                f"job {uid} is still {seen[0]} after {timeout:g} s (waiting for {sorted(wanted)})"
            ),
        )
        return current


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


def _publish(job_dir: Path, staging: Path, name: str) -> None:
    """Move ``staging`` to ``job_dir/name``, replacing what is there (an earlier share, or
    something planted), without following a symlink in place of ``job_dir``."""
    try:
        fd = open_dir_nofollow(job_dir)
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
