"""Inbox folders: listing message files, dropping them, setting bad ones aside, and the
security log of every file a party refused."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from loguru import logger

from syft_flwr.network import append_line, atomic_write_bytes, atomic_write_text, is_temporary
from syft_flwr.transport.codec import EncodedMessage
from syft_flwr.transport.errors import MessageFileError
from syft_flwr.transport.report import QuarantinedFile


def list_inbox(inbox: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    """Finished entries in ``inbox`` (temporary/hidden names skipped), oldest first, as
    directory entries (``.name``, ``.path``: no pathlib objects on the hot path). Entries that
    are not regular files (a FIFO, a folder, a symlink) are listed too: their reader refuses
    and sets them aside without following them."""
    found: list[os.DirEntry[str]] = []
    try:
        with os.scandir(inbox) as it:
            for entry in it:
                if not is_temporary(entry.name):
                    found.append(entry)
    except FileNotFoundError:
        return []
    if len(found) < 2:  # the usual case: nothing to order, no stat per file
        return found
    entries: list[tuple[int, str, os.DirEntry[str]]] = []
    for entry in found:
        try:
            entries.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name, entry))
        except FileNotFoundError:
            continue
    entries.sort(key=lambda e: e[:2])  # (mtime, name): names are unique
    return [entry for _, _, entry in entries]


class InboxFile(NamedTuple):
    """A file named by a file event: the ``.name`` and ``.path`` of a directory entry."""

    name: str
    path: str


#: message files up to this size are joined and written with one system call
_JOIN_BELOW_BYTES = 64 * 1024


def write_message(inbox: str | os.PathLike[str], encoded: EncodedMessage) -> str:
    """Drop ``encoded`` into ``inbox`` atomically; returns the file's path (no fsync: a lost
    message is re-sent or times out, and the hot path cannot afford a disk flush per
    message)."""
    path = os.path.join(inbox, encoded.envelope.file_name)
    buffers = encoded.buffers
    # a small file in one write (one system call); a large one unjoined (no copy of its arrays)
    data = b"".join(buffers) if encoded.size <= _JOIN_BELOW_BYTES else buffers
    atomic_write_bytes(path, data, durable=False)
    return path


def remove(path: str) -> None:
    """Delete ``path`` if it is still there (``os.unlink`` without pathlib's overhead)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path | None:
    """Move a bad file out of an inbox, with a note saying why. Returns its new path, or
    None if the file was already gone. Raises OSError when the file cannot be moved (e.g.
    permission denied, or ``quarantine_dir`` is not a folder); a note that cannot be
    written is only logged (the file is set aside all the same)."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / f"{time.time_ns()}-{path.name}"
    try:
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # inbox and private area on different file systems
                raise
            shutil.move(str(path), str(target))
    except FileNotFoundError:
        return None
    note = target.with_name(target.name + ".reason.txt")
    try:
        atomic_write_text(note, reason + "\n", durable=False)
    except OSError as exc:
        logger.error(f"could not write {note}: {exc}")
    logger.warning(f"quarantined {path.name} from {path.parent} to {target}: {reason}")
    return target


def log_refusal(
    log_path: Path,
    *,
    receiver: str,
    file: str,
    kind: str,
    sender: str | None,
    reason: str,
    quarantined: str | None,
) -> None:
    """Append one JSON line to a security log (``ts`` is epoch seconds). A failure to write
    is logged, never raised: refusing the file matters more than recording it."""
    line = json.dumps(
        {
            "ts": time.time(),
            "kind": kind,
            "file": file,
            "sender": sender,
            "reason": reason,
            "receiver": receiver,
            "quarantined": quarantined,
        }
    )
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        append_line(log_path, line)
    except OSError as exc:
        logger.error(f"could not append to the security log {log_path}: {exc}")


def refuse(
    path: Path,
    error: MessageFileError,
    *,
    quarantine_dir: Path,
    log_path: Path,
    receiver: str,
    move: bool = True,
) -> QuarantinedFile | None:
    """Quarantine a refused file and record it in the security log. None if the file was
    already gone (nothing was refused). A file that cannot be moved (permission denied, a
    broken quarantine folder) stays where it is: the refusal is logged all the same
    (``quarantined: null``) and comes back with ``set_aside=False``, for the reader to skip it
    on its later scans rather than refuse it again and again. ``move=False`` (the inbox is not
    a plain folder of the party's datasite) never moves anything."""

    def record(reason: str, quarantined: str | None) -> None:
        log_refusal(
            log_path,
            receiver=receiver,
            file=path.name,
            kind=error.kind,
            sender=error.sender,
            reason=reason,
            quarantined=quarantined,
        )

    try:
        if not move:
            raise OSError(
                f"{path.parent} is not a plain folder of the datasite (a symlink?): nothing is "
                "moved out of it"
            )
        target = quarantine(path, quarantine_dir, f"{error.kind}: {error.reason}")
    except OSError as exc:
        logger.error(
            f"{receiver}: refused {path.name} ({error.kind}: {error.reason}) but could not "
            f"move it to {quarantine_dir}: {exc}; it stays in {path.parent} and is skipped "
            "until its reader restarts"
        )
        reason = f"{error.reason} (not set aside: {exc})"
        record(reason, None)
        return QuarantinedFile(str(path), reason, error.kind, error.sender, set_aside=False)
    if target is None:
        return None
    record(error.reason, str(target))
    return QuarantinedFile(str(target), error.reason, kind=error.kind, sender=error.sender)
