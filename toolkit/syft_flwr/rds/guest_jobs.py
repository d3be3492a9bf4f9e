"""The data scientist's jobs on someone else's datasite: submit, follow, fetch results.

A guest sees only its own submissions (requests signed with its own key) and learns their
status from the owner-signed mirror; the owner's actions raise a PermissionError naming the
owner.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

from loguru import logger

from syft_flwr.crypto import (
    SignatureError,
    load_signing_key,
    signed_bytes,
    split_signature,
    verify_with,
)
from syft_flwr.network.atomic import TMP_PREFIX, atomic_write_json
from syft_flwr.network.layout import validate_name
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.client import owner_only
from syft_flwr.rds.code import check_entrypoint, copy_code, scan_code
from syft_flwr.rds.errors import JobNotFoundError, JobRefusedError
from syft_flwr.rds.intake import (
    REQUEST_DOMAIN,
    REQUEST_VERSION,
    SubmissionIncompleteError,
    SubmissionRefusedError,
    check_request_fields,
    read_request,
    sign_request,
)
from syft_flwr.rds.jobs import LOG_PREVIEW_CHARS, Job, JobRef, JobsView, job_uid, new_job_id
from syft_flwr.rds.records import JobStatus, status_set
from syft_flwr.rds.signed import STATUS_FILE, read_status


class GuestJobs(JobsView):
    """``session.job`` of a guest: submit, get, get_all, get_results, wait, wait_for."""

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
        validate_name(name, "job name")
        validate_name(dataset_name, "dataset name")
        code = Path(user_code_path).expanduser()
        if not code.exists() and not code.is_symlink():
            raise FileNotFoundError(f"code {code} does not exist")
        if entrypoint is None:
            entrypoint = code.name if code.is_file() else "main.py"
        entrypoint = check_entrypoint(entrypoint)
        self._check_dataset(dataset_name)
        files = scan_code(code, self.limits)
        if entrypoint not in files:
            raise ValueError(
                f"entrypoint {entrypoint!r} is not among the files of {code} "
                f"({', '.join(files[:10])}{', ...' if len(files) > 10 else ''})"
            )

        uid = new_job_id()
        self.inbox.mkdir(parents=True, exist_ok=True)
        staging = self.inbox / f"{TMP_PREFIX}{uuid.uuid4().hex}-{uid}"
        try:
            sha = copy_code(code, staging / "code", self.limits)
            payload = {
                "version": REQUEST_VERSION,
                "job_id": uid,
                "name": name,
                "dataset_name": dataset_name,
                "entrypoint": entrypoint,
                "submitter": self.client.email,
                "host": self.host,
                "code_sha256": sha,
                "files": files,
                "created_at": utc_now(),
                "description": description,
            }
            request = sign_request(self.client.identity, payload)
            atomic_write_json(staging / "request.json", request)
            staging.rename(self.job_dir(uid))  # the job appears whole, or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info(f"submitted job {name!r} ({uid}) to {self.host} for review")
        return self.job_from_request(request)

    def _check_dataset(self, dataset_name: str) -> None:
        if (self.network.dataset_dir(self.host, dataset_name) / "metadata.json").exists():
            return
        datasets = self.network.datasets_dir(self.host)
        known = (
            sorted(d.name for d in datasets.iterdir() if (d / "metadata.json").exists())
            if datasets.is_dir()
            else []
        )
        raise ValueError(
            f"{self.host} has no dataset {dataset_name!r} (available: "
            f"{', '.join(known) or 'none'}); submit against one of those"
        )

    # -- reading ------------------------------------------------------------------------------
    def _own_request(self, uid: str) -> dict[str, Any] | None:
        """The request of ``uid`` if it is this guest's own, signed by it; None for anything
        else (another party's job, a malformed or forged request)."""
        try:
            document = read_request(self.job_dir(uid), self.intake.max_request_bytes)
            payload, signature = split_signature(document)
            check_request_fields(payload, uid, self.host, self.limits)
            if payload["submitter"] != self.client.email:
                return None
            # checked with this party's own key, not with what its keys.json says now
            own_key = load_signing_key(self.client.identity).public_key()
            verify_with(own_key, signed_bytes(REQUEST_DOMAIN, payload), signature)
        except SubmissionIncompleteError:
            return None
        except (SubmissionRefusedError, SignatureError) as exc:
            self.warn_once(uid, f"ignoring job folder {self.job_dir(uid)}: {exc}")
            return None
        return document

    def status_of(self, uid: str) -> tuple[str, str | None]:
        """The status the owner signed into the job's mirror (``unknown`` if it is not the
        owner's), ``pending_code_review`` while the owner has not looked yet."""
        try:
            return read_status(
                self.network,
                self.host,
                uid,
                self.job_dir(uid) / STATUS_FILE,
                reader=self.client.email,
            )
        except FileNotFoundError:
            if not (self.job_dir(uid) / "request.json").exists():
                raise JobNotFoundError(f"no job {uid!r} on {self.host}") from None
            return str(JobStatus.PENDING_CODE_REVIEW), None  # the owner has not looked yet

    def get(self, uid: JobRef) -> Job:
        """This guest's job ``uid``; JobRefusedError (a JobNotFoundError) if the owner refused
        it at intake."""
        uid = job_uid(uid)
        req = self._own_request(uid)
        if req is None:
            self._raise_if_refused(uid)
            raise JobNotFoundError(f"no job {uid!r} on {self.host} visible to {self.client.email}")
        return self.job_from_request(req)

    def _raise_if_refused(self, uid: str) -> None:
        try:
            status, reason = read_status(
                self.network,
                self.host,
                uid,
                self.job_dir(uid) / STATUS_FILE,
                reader=self.client.email,
            )
        except FileNotFoundError:
            return
        if status == JobStatus.REFUSED:
            raise JobRefusedError(f"job {uid} was refused by {self.host}: {reason}")

    def get_all(self, status: str | Iterable[str] | None = None) -> list[Job]:
        """This guest's jobs in the inbox, oldest first, optionally only those with ``status``."""
        wanted = status_set(status)
        jobs = []
        for uid in self.entries()[0]:
            req = self._own_request(uid)
            if req is None:
                continue
            if wanted is None or self.status_of(uid)[0] in wanted:
                jobs.append(self.job_from_request(req))
        return jobs

    # -- the owner's actions: refused with a message naming the owner ---------------------------
    def _owner_only(self, action: str) -> NoReturn:
        raise owner_only(self.host, self.client.email, action)

    def approve(self, job: JobRef) -> Job:
        """Only the datasite's owner approves jobs: always PermissionError."""
        self._owner_only("approve jobs")

    def reject(self, job: JobRef, reason: str) -> Job:
        """Only the datasite's owner rejects jobs: always PermissionError."""
        self._owner_only("reject jobs")

    def show_logs(
        self, job: JobRef, run: int | None = None, max_chars: int = LOG_PREVIEW_CHARS
    ) -> str:
        """Only the datasite's owner reads run logs: always PermissionError."""
        self._owner_only("read job logs")

    def share_results(self, job: JobRef, run: int | None = None) -> Path:
        """Only the datasite's owner shares results: always PermissionError."""
        self._owner_only("share results")

    def refused(self) -> list[dict[str, Any]]:
        """Only the datasite's owner lists refused submissions: always PermissionError."""
        self._owner_only("list refused submissions")

    def run(self, job: JobRef, kind: str, **options: Any) -> Any:
        """Only the datasite's owner runs jobs: always PermissionError."""
        self._owner_only(f"run jobs on {kind} data")
