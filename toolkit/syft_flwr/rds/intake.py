"""Signed job requests: what a data scientist signs, and what a data owner accepts.

A submission is the folder ``<inbox>/<job_id>/`` holding ``request.json`` and ``code/``. The
request is a JSON object with exactly the fields of :data:`REQUEST_FIELDS` plus ``signature``:
the submitter's Ed25519 signature (base64) over the canonical JSON of those fields under the
domain :data:`REQUEST_DOMAIN` (see :func:`syft_flwr.crypto.sign_document`). The fields include
the code's sha256, the list of its files, the host it is for, the submitter's email and the
time it was signed, so none of them can be changed, and the request cannot be moved to another
job id or another data owner, without breaking the signature.

:func:`validate_submission` is the data owner's intake check of one inbox entry. It returns an
:class:`AcceptedSubmission` or raises :class:`SubmissionRefusedError` (whose ``reason`` is one
of :data:`REFUSAL_REASONS`); its subclass :class:`SubmissionIncompleteError` means the entry
may still be arriving through a file sync. Nothing else escapes it, whatever the inbox holds.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syft_flwr.config import Identity
from syft_flwr.crypto import (
    KeyChangedError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
    SignatureError,
    read_regular_file,
    sign_document,
    split_signature,
    trusted_keys,
    verify_document,
)
from syft_flwr.errors import SyftFlwrError
from syft_flwr.network.layout import Network, validate_email, validate_name
from syft_flwr.rds.code import DEFAULT_LIMITS, SubmissionLimits, check_entrypoint, code_sha256

REQUEST_VERSION = 1
REQUEST_DOMAIN = "rds.job_request.v1"
REQUEST_FILE = "request.json"
CODE_DIR = "code"

#: The signed fields of a request and their JSON types.
REQUEST_FIELDS: dict[str, type] = {
    "version": int,
    "job_id": str,
    "name": str,
    "dataset_name": str,
    "entrypoint": str,
    "submitter": str,
    "host": str,
    "code_sha256": str,
    "files": list,
    "created_at": str,
    "description": str,
}

#: Why an entry can be refused (``SubmissionRefusedError.reason``).
REFUSAL_REASONS = {
    "not_a_job_folder": "the inbox entry is not a plain folder named like a job id",
    "incomplete": "request.json or code files are missing (after the sync grace period)",
    "malformed": "request.json is unreadable, not JSON, or its fields are wrong",
    "unsigned": "request.json carries no signature",
    "unknown_submitter": "the submitter never published keys",
    "bad_signature": "the signature is not the submitter's over exactly these fields",
    "key_changed": "the submitter's published keys are not the ones pinned at first contact",
    "wrong_host": "the request was signed for another data owner",
    "expired": "the request was signed longer ago than the intake policy allows",
    "from_the_future": "the request was signed later than now plus the allowed clock skew",
    "code_mismatch": "the code is not what was signed, or holds what a job may not hold",
    "replayed": "a job with this id was already seen",
    "internal_error": "the check itself failed (a bug; the entry is refused to be safe)",
}

_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_DESCRIPTION_CHARS = 100_000
MAX_PATH_CHARS = 1024


@dataclass(frozen=True)
class IntakePolicy:
    """How a data owner judges submissions.

    ``max_age_s``: a request signed longer ago is refused as a possible replay (and a job that
    waited that long should be submitted again). ``max_clock_skew_s``: how far in the future a
    signing time may be. ``incomplete_grace_s``: how long an entry with a missing
    request.json or missing code files is left alone (a file sync may still be delivering it)
    before it is refused. ``max_request_bytes``: request.json larger than this is refused
    unread.
    """

    max_age_s: float = 24 * 3600.0
    max_clock_skew_s: float = 300.0
    incomplete_grace_s: float = 60.0
    max_request_bytes: int = 4 * 1024 * 1024


DEFAULT_INTAKE = IntakePolicy()


class SubmissionRefusedError(SyftFlwrError, PermissionError):
    """An inbox entry that is not a valid, signed, fresh submission. ``reason``: a short code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


class SubmissionIncompleteError(SubmissionRefusedError):
    """request.json or code files are missing: the entry may still be arriving."""

    def __init__(self, message: str):
        super().__init__("incomplete", message)


@dataclass(frozen=True)
class AcceptedSubmission:
    """A submission that passed intake: the signed request and its key's fingerprint."""

    request: dict[str, Any]
    code_sha256: str
    key_fingerprint: str


# -- the submitter's side ---------------------------------------------------------------------
def sign_request(identity: Identity, payload: dict[str, Any]) -> dict[str, Any]:
    """The request to write as request.json: ``payload`` signed by ``identity``.

    ``payload`` must hold exactly :data:`REQUEST_FIELDS` and name ``identity`` as submitter.
    """
    missing = sorted(set(REQUEST_FIELDS) - set(payload))
    extra = sorted(set(payload) - set(REQUEST_FIELDS))
    if missing or extra:
        raise ValueError(
            f"a job request has exactly {sorted(REQUEST_FIELDS)} (missing "
            f"{missing}, unexpected {extra})"
        )
    if payload["submitter"] != identity.email:
        raise ValueError(
            f"{identity.email} can only sign its own requests, not one from "
            f"{payload['submitter']!r}"
        )
    return sign_document(identity, REQUEST_DOMAIN, payload)


# -- field checks -----------------------------------------------------------------------------
def _malformed(message: str) -> SubmissionRefusedError:
    return SubmissionRefusedError("malformed", message)


def check_relative_path(rel: Any, what: str = "file") -> str:
    """``rel`` if it is a normalised relative POSIX path inside the code folder."""
    if not isinstance(rel, str) or not rel or len(rel) > MAX_PATH_CHARS:
        raise ValueError(f"{what} {rel!r:.80} is not a relative path")
    if "\x00" in rel or rel.startswith("/"):
        raise ValueError(f"{what} {rel!r:.80} is absolute or holds a NUL byte")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{what} {rel!r:.80} is not normalised or leaves the code folder")
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {rel!r:.80} is not valid UTF-8") from None
    return rel


def parse_time(value: Any) -> datetime:
    """An ISO-8601 time with a time zone, else ValueError."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{value!r:.80} is not an ISO-8601 time")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{value!r} has no time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range") from None


def check_request_fields(
    payload: dict[str, Any], job_id: str, host: str, limits: SubmissionLimits = DEFAULT_LIMITS
) -> None:
    """SubmissionRefusedError unless ``payload`` is a well-formed request for ``job_id``/``host``.

    Only structure is checked here; the signature and the code are checked by the caller.
    """
    missing = sorted(set(REQUEST_FIELDS) - set(payload))
    extra = sorted(set(payload) - set(REQUEST_FIELDS))
    if missing or extra:
        raise _malformed(f"request fields are wrong (missing {missing}, unexpected {extra})")
    for key, kind in REQUEST_FIELDS.items():
        value = payload[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _malformed(f"request field {key!r} is not a {kind.__name__}")
    if payload["version"] != REQUEST_VERSION:
        raise _malformed(f"request version {payload['version']} is not {REQUEST_VERSION}")
    if payload["job_id"] != job_id:
        raise _malformed(
            f"its job_id {payload['job_id']!r:.80} does not match its folder {job_id!r}"
        )
    try:
        validate_name(payload["name"], "job name")
        validate_name(payload["dataset_name"], "dataset name")
        validate_email(payload["submitter"])
        validate_email(payload["host"])
        if check_entrypoint(payload["entrypoint"]) != payload["entrypoint"]:
            raise ValueError(f"entrypoint {payload['entrypoint']!r:.80} is not normalised")
        check_relative_path(payload["entrypoint"], "entrypoint")
        if not _SHA256.fullmatch(payload["code_sha256"]):
            raise ValueError("code_sha256 is not 64 lowercase hex digits")
        files = payload["files"]
        if not files or len(files) > limits.max_files:
            raise ValueError(f"files lists {len(files)} files (1 to {limits.max_files} allowed)")
        for rel in files:
            check_relative_path(rel)
        if files != sorted(set(files)):
            raise ValueError("files is not sorted or has duplicates")
        if payload["entrypoint"] not in files:
            raise ValueError(f"entrypoint {payload['entrypoint']!r:.80} is not among its files")
        parse_time(payload["created_at"])
        if len(payload["description"]) > MAX_DESCRIPTION_CHARS:
            raise ValueError(f"description is over {MAX_DESCRIPTION_CHARS} characters")
    except ValueError as exc:
        raise _malformed(f"request is malformed: {exc}") from None
    if payload["host"] != host:
        raise SubmissionRefusedError(
            "wrong_host",
            f"the request was signed for {payload['host']}, not for {host}: a submission "
            "copied from another datasite's inbox",
        )


# -- the data owner's intake ------------------------------------------------------------------
def read_request(job_dir: Path, max_bytes: int) -> Any:
    """The parsed request.json of ``job_dir``; SubmissionRefusedError if it is not readable."""
    path = job_dir / REQUEST_FILE
    try:
        raw = read_regular_file(path, max_bytes)
    except FileNotFoundError:
        raise SubmissionIncompleteError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise _malformed(f"{path} cannot be read as a request: {exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _malformed(f"{path} is not UTF-8 JSON: {str(exc)[:200]}") from None


def _check_entry(job_dir: Path) -> str:
    try:
        uid = validate_name(job_dir.name, "job id")
        mode = os.lstat(job_dir).st_mode
    except (ValueError, OSError) as exc:
        raise SubmissionRefusedError("not_a_job_folder", f"{job_dir}: {exc}") from None
    if not stat.S_ISDIR(mode):
        raise SubmissionRefusedError(
            "not_a_job_folder",
            f"{job_dir} is a {'symlink' if stat.S_ISLNK(mode) else 'file'}, not a job folder",
        )
    return uid


def _check_freshness(created_at: str, policy: IntakePolicy, now: datetime) -> None:
    age = (now - parse_time(created_at)).total_seconds()
    if age > policy.max_age_s:
        raise SubmissionRefusedError(
            "expired",
            f"the request was signed at {created_at}, {age / 3600:.1f} h ago, longer ago than "
            f"the {policy.max_age_s / 3600:g} h this datasite accepts (a replay, or a job that "
            "waited too long): submit it again",
        )
    if -age > policy.max_clock_skew_s:
        raise SubmissionRefusedError(
            "from_the_future",
            f"the request was signed at {created_at}, {-age:.0f} s in the future (more than the "
            f"{policy.max_clock_skew_s:g} s of clock skew allowed): fix the submitter's clock",
        )


def _check_code(job_dir: Path, request: dict[str, Any], limits: SubmissionLimits) -> str:
    code = job_dir / CODE_DIR
    try:
        mode = os.lstat(code).st_mode
    except FileNotFoundError:
        raise SubmissionIncompleteError(f"{code} is missing") from None
    except OSError as exc:
        raise SubmissionRefusedError("code_mismatch", f"{code}: {exc}") from None
    if not stat.S_ISDIR(mode):
        raise SubmissionRefusedError("code_mismatch", f"{code} is not a plain folder")
    try:
        missing = [rel for rel in request["files"] if not os.path.lexists(code / rel)]
    except (OSError, ValueError) as exc:
        raise SubmissionRefusedError("code_mismatch", f"{code}: {exc}") from None
    if missing:
        raise SubmissionIncompleteError(
            f"{len(missing)} of the {len(request['files'])} signed files are missing from "
            f"{code} (e.g. {missing[0]!r})"
        )
    try:
        seen = code_sha256(code, limits)
    except (ValueError, OSError) as exc:
        raise SubmissionRefusedError("code_mismatch", f"the code is refused: {exc}") from None
    if seen != request["code_sha256"]:
        raise SubmissionRefusedError(
            "code_mismatch",
            f"the code in {code} is not the code that was signed (hash {seen[:12]}…, signed "
            f"{request['code_sha256'][:12]}…): it was altered after submission",
        )
    return seen


def validate_submission(
    network: Network,
    host: str,
    job_dir: Path,
    *,
    policy: IntakePolicy = DEFAULT_INTAKE,
    limits: SubmissionLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> AcceptedSubmission:
    """Check the inbox entry ``job_dir`` of ``host``'s inbox as a signed submission.

    Returns the accepted request; raises only :class:`SubmissionRefusedError` (or its subclass
    :class:`SubmissionIncompleteError`). Whether the job id was seen before is the caller's
    check (it holds the records).
    """
    now = now or datetime.now(UTC)
    uid = _check_entry(job_dir)
    document = read_request(job_dir, policy.max_request_bytes)
    if not isinstance(document, dict):
        raise _malformed(f"request.json of {uid} is not a JSON object")
    if "signature" not in document:
        raise SubmissionRefusedError(
            "unsigned", f"request.json of {uid} is not signed: submit with session.job.submit"
        )
    try:
        payload, _ = split_signature(document)
    except SignatureError as exc:
        raise SubmissionRefusedError("bad_signature", f"request.json of {uid}: {exc}") from None
    check_request_fields(payload, uid, host, limits)
    submitter = payload["submitter"]
    try:
        keys = trusted_keys(network, submitter, host)
    except PublicKeysNotFoundError as exc:
        raise SubmissionRefusedError("unknown_submitter", str(exc)) from None
    except KeyChangedError as exc:
        raise SubmissionRefusedError("key_changed", str(exc)) from None
    except PublicKeysInvalidError as exc:
        raise SubmissionRefusedError("bad_signature", str(exc)) from None
    try:
        verify_document(network, submitter, REQUEST_DOMAIN, document, reader=host)
    except SignatureError as exc:
        raise SubmissionRefusedError(
            "bad_signature", f"request.json of {uid} claims to come from {submitter}: {exc}"
        ) from None
    _check_freshness(payload["created_at"], policy, now)
    seen = _check_code(job_dir, payload, limits)
    return AcceptedSubmission(request=document, code_sha256=seen, key_fingerprint=keys.fingerprint)
