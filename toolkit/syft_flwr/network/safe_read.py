"""Reading files others can write: never follow a link, never block, never read unbounded.

A shared folder (an inbox, a datasite's ``public/``, a job's folder) can hold anything a
file sync or another party put there: a symlink to a private file, a FIFO that blocks an
``open``, a folder or a device such as ``/dev/zero`` in a file's place. :func:`open_regular`
opens with ``O_NOFOLLOW | O_NONBLOCK`` and checks with ``fstat`` that it got a regular file;
:func:`read_regular` also reads at most a limit. Anything else raises
:class:`UnsafeFileError` (a ``ValueError``); a missing file raises ``FileNotFoundError``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from syft_flwr.errors import SyftFlwrError

KB = 1024
MB = 1024 * KB

#: The most bytes read of each kind of shared file (a larger one is refused unread).
LIMITS: dict[str, int] = {
    "keys": 16 * KB,  # public/keys.json
    "status": 64 * KB,  # public/status.json (heartbeat), a job's status mirror
    "metadata": 1 * MB,  # a dataset's metadata.json
    "readme": 1 * MB,  # a dataset's README.md
    "request": 4 * MB,  # a job's request.json
    "manifest": 16 * MB,  # shared results' manifest.json
    "code": 10 * MB,  # one file of a job's code
    "mock": 256 * MB,  # one mock data file
    "record": 16 * MB,  # a run registration, an event log line batch, a reason file
}


class UnsafeFileError(SyftFlwrError, ValueError):
    """A shared file is a symlink, FIFO, socket, device or folder, or is over its size limit."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        super().__init__(
            f"refusing {os.fspath(path)}: {problem}. Only regular files are read from shared "
            "folders; remove it, or ask whoever wrote it to write a plain file"
        )
        self.path = os.fspath(path)
        self.problem = problem


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symlink"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> int:
    """A read-only descriptor of the regular file ``path``, never following a symlink and
    never blocking on a FIFO. UnsafeFileError for anything else; FileNotFoundError if gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(path, "it is a symlink") from None
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket (or a FIFO with no writer)
            raise UnsafeFileError(path, "it is a socket or a special file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFileError(path, f"it is {_kind_of(mode)}")
        os.set_blocking(fd, True)  # a regular file: reads never block anyway
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int, limit: int, path: str | os.PathLike[str] = "<file>") -> bytes:
    """At most ``limit`` bytes of the open file ``fd``; UnsafeFileError if it holds more."""
    size = os.fstat(fd).st_size
    if size > limit:
        raise UnsafeFileError(path, f"it is {size} bytes, over the limit of {limit}")
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(limit + 1 - total, 1 * MB))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise UnsafeFileError(path, f"it grew over the limit of {limit} bytes while read")
    return b"".join(chunks)


def read_regular(
    path: str | os.PathLike[str], kind: str | int, *, dir_fd: int | None = None
) -> bytes:
    """The bytes of the regular file ``path``: at most ``LIMITS[kind]`` (or ``kind`` bytes).

    UnsafeFileError for a symlink, FIFO, socket, device, folder or an oversized file;
    FileNotFoundError if it is missing.
    """
    limit = LIMITS[kind] if isinstance(kind, str) else int(kind)
    fd = open_regular(path, dir_fd=dir_fd)
    try:
        return read_fd(fd, limit, path)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], kind: str | int) -> str:
    """:func:`read_regular` decoded as UTF-8 (undecodable bytes replaced)."""
    return read_regular(path, kind).decode("utf-8", errors="replace")


def is_plain_dir(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a folder itself (not a symlink to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_plain_path(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a folder below ``base`` reached through plain folders only (no
    component between them is a symlink): what others may not redirect elsewhere."""
    path, base = Path(path), Path(base)
    try:
        rel = path.relative_to(base)
    except ValueError:
        return False
    current = base
    for part in rel.parts:
        current = current / part
        if not is_plain_dir(current):
            return False
    return True


def open_plain_dir(path: str | os.PathLike[str], base: str | os.PathLike[str]) -> int:
    """A descriptor of the folder ``path`` below ``base``, opened one component at a time
    without following a symlink: a folder others can replace (an inbox) cannot redirect what
    is read or written through the descriptor. OSError (ELOOP, ENOTDIR, ...) otherwise."""
    path, base = Path(path), Path(base)
    try:
        rel = path.relative_to(base)
    except ValueError:
        raise NotADirectoryError(errno.ENOTDIR, f"{path} is not below {base}") from None
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(base, flags)
    try:
        for part in rel.parts:
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular_files(root: Path) -> list[str]:
    """Sorted relative POSIX paths of the regular files under the folder ``root``.

    UnsafeFileError for a symlink (never followed), FIFO, socket or device anywhere in it, or
    if ``root`` itself is not a plain folder. Hidden names are skipped.
    """
    root = Path(root)
    if not is_plain_dir(root):
        raise UnsafeFileError(root, "it is not a plain folder (a symlink, or missing)")
    out: list[str] = []

    def fail(exc: OSError) -> None:
        raise exc

    for current, dirnames, filenames in os.walk(root, followlinks=False, onerror=fail):
        here = Path(current)
        for name in list(dirnames):
            if name.startswith("."):
                dirnames.remove(name)
            elif not is_plain_dir(here / name):
                raise UnsafeFileError(here / name, "it is a symlink to a folder")
        for name in filenames:
            if name.startswith("."):
                continue
            mode = os.lstat(here / name).st_mode
            if not stat.S_ISREG(mode):
                raise UnsafeFileError(here / name, f"it is {_kind_of(mode)}")
            out.append((here / name).relative_to(root).as_posix())
    return sorted(out)
