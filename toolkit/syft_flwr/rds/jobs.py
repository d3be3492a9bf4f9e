"""Jobs: submission into a datasite's inbox, the data owner's review, results going back.

```
datasites/<do>/app_data/rds/jobs/<job_id>/   written by the submitter: code/, request.json
                                             written by the data owner: status.json (a mirror
                                             for the submitter), results/ (after sharing)
private/<do>/rds/jobs/<job_id>/state.json    the data owner's authoritative state
```
"""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr.network.atomic import TMP_PREFIX, atomic_write_json, is_temporary, read_json
from syft_flwr.network.layout import validate_email, validate_name
from syft_flwr.rds._files import copy_regular_files, utc_now, wait_until
from syft_flwr.rds.code import check_entrypoint, code_sha256, copy_code, render_code, scan_code
from syft_flwr.rds.errors import JobNotFoundError, JobStateError
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
        return self._api._status_of(self.uid)[0]

    @property
    def reason(self) -> str | None:
        return self._api._status_of(self.uid)[1]

    @property
    def results_path(self) -> Path:
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
        written: names, the dataset, the entrypoint, symlinks and sizes.
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
            request = {
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
            atomic_write_json(staging / "request.json", request)
            staging.rename(self.inbox / uid)  # the job appears whole, or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info(f"submitted job {name!r} ({uid}) to {s.host} for review")
        return self._job_from_request(request)

    # -- reading ------------------------------------------------------------------------------
    def _read_request(self, uid: str) -> dict[str, Any] | None:
        """The request of ``uid`` if it is well-formed, else None (with a warning, once)."""
        path = self.inbox / uid / "request.json"
        try:
            req = read_json(path)
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            self._warn(uid, f"unreadable request {path} ({exc})")
            return None
        try:
            if not isinstance(req, dict) or req.get("job_id") != uid:
                raise ValueError("its job_id does not match its folder")
            validate_name(req["name"], "job name")
            validate_name(req["dataset_name"], "dataset name")
            validate_email(req["submitter"])
            if check_entrypoint(req["entrypoint"]) != req["entrypoint"]:
                raise ValueError("entrypoint is not normalised")
            for key in ("code_sha256", "created_at"):
                if not isinstance(req.get(key), str):
                    raise ValueError(f"{key} is missing")
        except (KeyError, ValueError, TypeError) as exc:
            self._warn(uid, f"ignoring malformed job request {path}: {exc}")
            return None
        return req

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

    def _uids(self) -> list[str]:
        if not self.inbox.is_dir():
            return []
        out = []
        for entry in self.inbox.iterdir():
            if is_temporary(entry.name):
                continue
            try:
                validate_name(entry.name)
            except ValueError:
                continue
            out.append(entry.name)
        return sorted(out)

    def _visible(self, req: dict[str, Any]) -> bool:
        """Guests see only their own submissions; the owner sees all."""
        return self._session.is_admin or req["submitter"] == self._session.client.email

    def get(self, uid: str) -> Job:
        """The job ``uid`` (the owner records a first sighting, see :meth:`get_all`)."""
        if isinstance(uid, Job):
            uid = uid.uid
        validate_name(uid, "job uid")
        if self._session.is_admin:
            state = self._ensure_state(uid)
            req = state["request"] if state is not None else None
        else:
            req = self._read_request(uid)
        if req is None or not self._visible(req):
            raise JobNotFoundError(
                f"no job {uid!r} on {self._session.host} visible to {self._session.client.email}"
            )
        return self._job_from_request(req)

    def get_all(self, status: str | Iterable[str] | None = None) -> list[Job]:
        """Jobs in the inbox, oldest first, optionally only those with ``status``.

        For the owner, a job with no state yet is recorded (and audited) as
        ``pending_code_review`` now: its first sighting.
        """
        wanted = status_set(status)
        jobs = []
        if self._session.is_admin:
            for uid in sorted(set(self._uids()) | set(self._session.store.job_ids())):
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

    def _status_of(self, uid: str) -> tuple[str, str | None]:
        if self._session.is_admin:
            state = self._ensure_state(uid)
            if state is None:
                raise JobNotFoundError(f"no job {uid!r} on {self._session.host}")
            return state["status"], state.get("reason")
        mirror = self._job_dir(uid) / "status.json"
        try:
            data = read_json(mirror)
            return str(data["status"]), data.get("reason")
        except FileNotFoundError:
            if not (self._job_dir(uid) / "request.json").exists():
                raise JobNotFoundError(f"no job {uid!r} on {self._session.host}") from None
            return str(JobStatus.PENDING_CODE_REVIEW), None  # the owner has not looked yet
        except (ValueError, KeyError, TypeError, OSError):
            return "unknown", None

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
        """The owner's state of ``uid``, None if there is no such job.

        On first sighting of a well-formed request the job is recorded as pending review,
        with a copy of its request: from then on the owner acts on that copy (which
        dataset, which entrypoint), never on the inbox's request, which others can rewrite.
        """
        s = self._session
        state = self._state(uid)
        if state is None:
            req = self._read_request(uid)
            if req is None:
                return None

            def make() -> dict[str, Any]:
                problem = None
                seen = None
                try:
                    seen = code_sha256(self._job_dir(uid) / "code", s.limits)
                    if seen != req["code_sha256"]:
                        problem = "the code does not match the hash in its request"
                except (ValueError, OSError) as exc:
                    problem = str(exc)
                st: dict[str, Any] = {
                    "job_id": uid,
                    "request": req,
                    "first_seen_at": utc_now(),
                    "seen_sha256": seen,
                    "pinned_sha256": None,
                    "intake_problem": problem,
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
                    dataset=req["dataset_name"],
                    entrypoint=req["entrypoint"],
                    code_sha256=seen,
                    problem=problem,
                )
                return st

            state, _ = s.store.create_if_missing(uid, make)
        self._sync_mirror(uid, state)
        return state

    def _sync_mirror(self, uid: str, state: dict[str, Any]) -> None:
        """Rewrite the inbox's status mirror if it does not say what the state says."""
        try:
            mirror = read_json(self._job_dir(uid) / "status.json")
            if mirror.get("status") == state["status"] and mirror.get("reason") == state.get(
                "reason"
            ):
                return
        except (OSError, ValueError, AttributeError):
            pass
        self._mirror(uid, state)

    def _mirror(self, uid: str, state: dict[str, Any]) -> None:
        job_dir = self._job_dir(uid)
        if not job_dir.is_dir():
            return
        runs = state.get("runs") or []
        atomic_write_json(
            job_dir / "status.json",
            {
                "job_id": uid,
                "status": state["status"],
                "reason": state.get("reason"),
                "updated_at": utc_now(),
                "runs": len(runs),
            },
        )

    def _owner_job(self, job: JobRef, action: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(uid, request, state) for an owner's action, from the owner's own records."""
        self._session.require_admin(action)
        uid = job.uid if isinstance(job, Job) else str(job)
        state = self._ensure_state(validate_name(uid, "job uid"))
        if state is None:
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
        if state.get("intake_problem"):
            raise self._refuse(
                uid,
                "approve",
                f"refusing to approve job {uid}: {state['intake_problem']}; reject it instead",
            )
        try:
            current = code_sha256(self._job_dir(uid) / "code", s.limits)
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
        """Publish the output/ and logs of the latest finished run to the job's results/."""
        uid, req, state = self._owner_job(job, "share results")
        s = self._session
        shareable = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.SHARED)
        if state["status"] not in shareable:
            raise JobStateError(
                f"job {uid} is {state['status']}: run it first (session.run_private(job)); "
                "results can be shared once a run has finished"
            )
        record = self._run_record(uid, state, run)
        job_dir = self._job_dir(uid)
        staging = job_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}-results"
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
            if results.exists():
                old = job_dir / f"{TMP_PREFIX}old-{uuid.uuid4().hex}-results"
                results.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            staging.rename(results)
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
        """The folder of shared results; PermissionError until the owner shares them."""
        uid = job.uid if isinstance(job, Job) else str(job)
        status, _ = self._status_of(validate_name(uid, "job uid"))
        results = self._job_dir(uid) / "results"
        if status != JobStatus.SHARED or not (results / "run.json").exists():
            raise PermissionError(
                f"the results of job {uid} have not been shared by {self._session.host} yet "
                f"(status: {status}); results leave a datasite only when its owner runs "
                "session.job.share_results(job)"
            )
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

        A job that gets rejected while waiting for another status raises JobStateError.
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
