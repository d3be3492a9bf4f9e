"""Small file primitives every layer shares: an exclusive lock and append-only line files.

Locks are ``fcntl.flock`` locks on a lock file: they serialise read-modify-write steps
between the threads and processes of one machine, and the kernel releases them when a
process dies. An appended line is one ``write`` on an ``O_APPEND`` descriptor, so lines of
concurrent writers never interleave.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: str | os.PathLike[str], *, blocking: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, mode 0600, if missing) for the block.

    With ``blocking=False`` a lock held elsewhere raises :class:`BlockingIOError` at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def append_line(path: str | os.PathLike[str], line: str, *, durable: bool = False) -> None:
    """Append ``line`` (a newline is added) to ``path``, created with mode 0600 if missing,
    in one write; ``durable`` flushes it to disk before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


class LineLog:
    """An append-only file of lines kept open for repeated appends (e.g. ids already
    answered): :meth:`lines` reads what is there, :meth:`append` adds one line per write."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def lines(self) -> list[str]:
        """The lines written so far (undecodable bytes replaced), without line ends."""
        return self.path.read_text(encoding="utf-8", errors="replace").splitlines()

    def append(self, line: str) -> None:
        os.write(self._fd, (line + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LineLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
