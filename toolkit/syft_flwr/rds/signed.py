"""What the data owner writes into a job's inbox folder, signed so the submitter can trust it.

The inbox folder ``datasites/<do>/app_data/rds/jobs/<job_id>/`` is writable by others, so a
file there proves nothing by being there. The data owner signs (Ed25519, see
:mod:`syft_flwr.crypto`):

- ``status.json``, the status mirror: ``{job_id, status, reason, updated_at, runs}`` under
  :data:`STATUS_DOMAIN`. A guest reads a mirror that is not signed by the host as ``unknown``.
- ``results/manifest.json``: ``{job_id, host, run, shared_at, files: {path: sha256}}`` under
  :data:`RESULTS_DOMAIN`. :func:`verify_results` accepts a results folder only if the manifest
  is the host's and the folder holds exactly those files with those hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from syft_flwr.config import Identity
from syft_flwr.crypto import SignatureError, read_regular_file, sign_document, verify_document
from syft_flwr.errors import SyftFlwrError
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network

STATUS_DOMAIN = "rds.job_status.v1"
RESULTS_DOMAIN = "rds.job_results.v1"
STATUS_FILE = "status.json"
MANIFEST_FILE = "manifest.json"
MAX_STATUS_BYTES = 64 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class ResultsNotSharedError(SyftFlwrError, PermissionError):
    """No manifest: the data owner has not shared results for this job."""


class ResultsTamperedError(SyftFlwrError, PermissionError):
    """The results folder is not what the data owner shared (forged, added, altered files)."""


def _load(path: Path, limit: int) -> Any:
    return json.loads(read_regular_file(path, limit).decode("utf-8"))


# -- the status mirror ------------------------------------------------------------------------
def status_document(identity: Identity, payload: dict[str, Any]) -> dict[str, Any]:
    return sign_document(identity, STATUS_DOMAIN, payload)


def read_status(network: Network, host: str, uid: str, path: Path) -> tuple[str, str | None]:
    """``(status, reason)`` from a status mirror signed by ``host`` for job ``uid``.

    FileNotFoundError if there is none; ``("unknown", why)`` if it is unreadable or not the
    host's.
    """
    try:
        document = _load(path, MAX_STATUS_BYTES)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        return "unknown", f"the status file {path} is unreadable ({exc})"
    try:
        payload = verify_document(network, host, STATUS_DOMAIN, document)
    except SignatureError as exc:
        return "unknown", f"the status file {path} is not signed by {host}: {exc}"
    status, reason = payload.get("status"), payload.get("reason")
    if payload.get("job_id") != uid or not isinstance(status, str):
        return "unknown", f"the status file {path} is {host}'s status of another job"
    return status, reason if isinstance(reason, str) else None


def mirror_says(
    network: Network, host: str, uid: str, path: Path, status: str, reason: Any
) -> bool:
    """True if ``path`` is a mirror signed by ``host`` saying ``status`` and ``reason``."""
    try:
        return read_status(network, host, uid, path) == (status, reason)
    except FileNotFoundError:
        return False


# -- shared results ---------------------------------------------------------------------------
def _digest(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tree_digests(root: Path, *, skip: str | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the regular files under ``root`` (not following links).

    ValueError for a symlink or anything that is not a regular file or folder.
    """
    out: dict[str, str] = {}

    def fail(exc: OSError) -> None:
        raise exc

    for current, dirnames, filenames in os.walk(root, followlinks=False, onerror=fail):
        here = Path(current)
        for name in dirnames + filenames:
            path = here / name
            mode = path.lstat().st_mode
            rel = path.relative_to(root).as_posix()
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                raise ValueError(f"{rel} is not a regular file")
            if rel != skip:
                out[rel] = _digest(path)
    return out


def write_manifest(
    identity: Identity, folder: Path, *, job_id: str, host: str, run: int, shared_at: str
) -> dict[str, Any]:
    """Sign the files now in ``folder`` into ``folder/manifest.json``; returns the payload."""
    payload = {
        "job_id": job_id,
        "host": host,
        "run": run,
        "shared_at": shared_at,
        "files": tree_digests(folder, skip=MANIFEST_FILE),
    }
    atomic_write_json(folder / MANIFEST_FILE, sign_document(identity, RESULTS_DOMAIN, payload))
    return payload


def verify_results(network: Network, host: str, uid: str, folder: Path) -> dict[str, Any]:
    """The manifest payload if ``folder`` is exactly what ``host`` shared for job ``uid``.

    ResultsNotSharedError if there is no manifest; ResultsTamperedError if the manifest is not
    the host's, is for another job, or the files differ from it.
    """
    path = folder / MANIFEST_FILE
    if not os.path.lexists(path):
        raise ResultsNotSharedError(f"no {MANIFEST_FILE} in {folder}")
    problem = f"{folder} is not what {host} shared for job {uid}"
    try:
        payload = verify_document(network, host, RESULTS_DOMAIN, _load(path, MAX_MANIFEST_BYTES))
        if payload.get("job_id") != uid or payload.get("host") != host:
            raise ValueError(f"its manifest is for job {payload.get('job_id')!r:.80}")
        files = payload.get("files")
        if not isinstance(files, dict):
            raise ValueError("its manifest lists no files")
        actual = tree_digests(folder, skip=MANIFEST_FILE)
    except (SignatureError, OSError, ValueError, RecursionError) as exc:
        raise ResultsTamperedError(f"{problem}: {exc}") from None
    if actual != files:
        added = sorted(set(actual) - set(files))
        missing = sorted(set(files) - set(actual))
        changed = sorted(k for k in set(actual) & set(files) if actual[k] != files[k])
        raise ResultsTamperedError(
            f"{problem}: files added {added[:5]}, missing {missing[:5]}, altered {changed[:5]}"
        )
    return payload
