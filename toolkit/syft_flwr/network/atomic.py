"""Atomic file writes: a reader never sees a partial file.

Every file is written under a temporary, hidden name in its final directory and then renamed
into place (``os.replace`` is atomic on POSIX within one file system). Readers skip names that
start with :data:`TMP_PREFIX`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def is_temporary(name: str) -> bool:
    """True for names a writer has not finished yet (and other hidden files)."""
    return name.startswith(".")


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes | memoryview | Sequence[bytes | memoryview],
    *,
    durable: bool = True,
) -> None:
    """Write ``data`` (or a list of buffers, written back to back) to ``path`` atomically.

    A missing parent folder is created. ``durable=True`` fsyncs the file before the rename so
    a crash cannot leave an empty file under the final name; message files on the hot path
    may skip it (they are re-sent on loss). Raises ``OSError`` with the path in its message
    when the disk is full or read-only; the temporary file is removed, nothing is left
    half-written.
    """
    # str paths and os calls: this is on the path of every message file, where pathlib's
    # objects cost more than the write itself
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{os.urandom(16).hex()}-{name}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:  # the folder is missing: create it only then
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            for buffer in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                view = memoryview(buffer)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            if durable:
                os.fsync(fd)
            # renamed before it is closed: the close event a folder watcher sees names the
            # finished file, so a reader is never woken for the temporary one
            os.replace(tmp, path)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise OSError(exc.errno, f"could not write {path}: {exc.strerror}") from exc


def atomic_write_text(path: Path, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", durable=durable
    )


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
