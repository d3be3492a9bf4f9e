"""What the data owner writes into a job's inbox folder, signed so the submitter can trust it.

The inbox folder ``datasites/<do>/app_data/rds/jobs/<job_id>/`` is writable by others, so a
file there proves nothing by being there. The data owner signs (Ed25519, see
:mod:`syft_flwr.crypto`):

- ``status.json``, the status mirror: ``{job_id, status, reason, updated_at, runs, seq}``
  under :data:`STATUS_DOMAIN`. A guest reads a mirror that is not signed by the host, or is
  older (a lower ``seq``) than one it already read, as ``unknown``.
- ``results/manifest.json``: ``{job_id, host, run, shared_at, seq, files: {path: sha256}}``
  under :data:`RESULTS_DOMAIN`. :func:`verify_results` accepts a results folder only if the
  manifest is the host's, is not older than one the reader accepted, and the folder holds
  exactly those files with those hashes.

``seq`` comes from :func:`syft_flwr.crypto.next_sequence`; readers remember the newest they
accepted (:class:`syft_flwr.crypto.SeenSequences`), so an older signed file put back in place
(a replay) is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from syft_flwr.config import Identity
from syft_flwr.crypto import (
    SeenSequences,
    SignatureError,
    StaleDocumentError,
    next_sequence,
    sequence_of,
    sign_document,
    verify_document,
)
from syft_flwr.errors import SyftFlwrError
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from syft_flwr.network.safe_read import LIMITS, open_regular, read_regular

STATUS_DOMAIN = "rds.job_status.v1"
RESULTS_DOMAIN = "rds.job_results.v1"
STATUS_FILE = "status.json"
MANIFEST_FILE = "manifest.json"
MAX_STATUS_BYTES = LIMITS["status"]
MAX_MANIFEST_BYTES = LIMITS["manifest"]


class ResultsNotSharedError(SyftFlwrError, PermissionError):
    """No manifest: the data owner has not shared results for this job."""


class ResultsTamperedError(SyftFlwrError, PermissionError):
    """The results folder is not what the data owner shared (forged, added, altered files)."""


def _load(path: Path, limit: int) -> Any:
    return json.loads(read_regular(path, limit).decode("utf-8"))


# -- the status mirror ------------------------------------------------------------------------
def status_document(identity: Identity, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the host's next sequence number, signed."""
    seq = next_sequence(identity.network, identity.email)
    return sign_document(identity, STATUS_DOMAIN, {**payload, "seq": seq})


def read_status(
    network: Network, host: str, uid: str, path: Path, *, reader: str | None = None
) -> tuple[str, str | None]:
    """``(status, reason)`` from a status mirror signed by ``host`` for job ``uid``.

    FileNotFoundError if there is none; ``("unknown", why)`` if it is unreadable, not the
    host's (as ``reader`` pinned its keys), or older than a mirror ``reader`` already read.
    """
    try:
        document = _load(path, MAX_STATUS_BYTES)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        return "unknown", f"the status file {path} is unreadable ({exc})"
    try:
        payload = verify_document(network, host, STATUS_DOMAIN, document, reader=reader)
    except SignatureError as exc:
        return "unknown", f"the status file {path} is not signed by {host}: {exc}"
    status, reason = payload.get("status"), payload.get("reason")
    if payload.get("job_id") != uid or not isinstance(status, str):
        return "unknown", f"the status file {path} is {host}'s status of another job"
    what = f"the status file {path}"
    try:
        SeenSequences(network, reader).check(
            host, f"status:{uid}", sequence_of(payload, what), what
        )
    except StaleDocumentError as exc:
        return "unknown", str(exc)
    return status, reason if isinstance(reason, str) else None


def mirror_says(
    network: Network, host: str, uid: str, path: Path, status: str, reason: Any
) -> bool:
    """True if ``path`` is a fresh mirror signed by ``host`` saying ``status`` and ``reason``."""
    try:
        return read_status(network, host, uid, path, reader=host) == (status, reason)
    except FileNotFoundError:
        return False


# -- shared results ---------------------------------------------------------------------------
def _digest(path: Path) -> str:
    with os.fdopen(open_regular(path), "rb") as fh:
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
        "seq": next_sequence(identity.network, identity.email),
        "files": tree_digests(folder, skip=MANIFEST_FILE),
    }
    atomic_write_json(folder / MANIFEST_FILE, sign_document(identity, RESULTS_DOMAIN, payload))
    return payload


def verify_results(
    network: Network, host: str, uid: str, folder: Path, *, reader: str | None = None
) -> dict[str, Any]:
    """The manifest payload if ``folder`` is exactly what ``host`` shared for job ``uid``.

    ResultsNotSharedError if there is no manifest; ResultsTamperedError if the manifest is not
    the host's (as ``reader`` pinned its keys), is for another job, is older than results
    ``reader`` already accepted, or the files differ from it.
    """
    path = folder / MANIFEST_FILE
    if not os.path.lexists(path):
        raise ResultsNotSharedError(f"no {MANIFEST_FILE} in {folder}")
    problem = f"{folder} is not what {host} shared for job {uid}"
    try:
        payload = verify_document(
            network, host, RESULTS_DOMAIN, _load(path, MAX_MANIFEST_BYTES), reader=reader
        )
        if payload.get("job_id") != uid or payload.get("host") != host:
            raise ValueError(f"its manifest is for job {payload.get('job_id')!r:.80}")
        seq = sequence_of(payload, f"the manifest {path}")
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
    try:
        SeenSequences(network, reader).check(host, f"results:{uid}", seq, f"the manifest {path}")
    except StaleDocumentError as exc:
        raise ResultsTamperedError(f"{problem}: {exc}") from None
    return payload
