"""Atomic file writes: a reader never sees a partial file.

Every file is written under a temporary, hidden name in its final directory and then renamed
into place (``os.replace`` is atomic on POSIX within one file system). Readers skip names that
start with :data:`TMP_PREFIX`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def is_temporary(name: str) -> bool:
    """True for names a writer has not finished yet (and other hidden files)."""
    return name.startswith(".")


def atomic_write_bytes(
    path: Path,
    data: bytes | memoryview | Sequence[bytes | memoryview],
    *,
    durable: bool = True,
) -> None:
    """Write ``data`` (or a list of buffers, written back to back) to ``path`` atomically.

    ``durable=True`` fsyncs the file before the rename so a crash cannot leave an empty file
    under the final name; message files on the hot path may skip it (they are re-sent on loss).
    Raises ``OSError`` with the path in its message when the disk is full or read-only; the
    temporary file is removed, nothing is left half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for buffer in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                view = memoryview(buffer)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
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
