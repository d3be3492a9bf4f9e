"""Small file helpers of the RDS layer: a lock, timestamps, waiting, copying plain files."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from syft_flwr.network.watch import DirectoryWatcher


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` (created if missing) for the block.

    Serialises read-modify-write steps between threads and processes of the same machine.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def utc_now() -> str:
    """ISO-8601 UTC timestamp with microseconds, e.g. ``2025-01-31T12:00:00.123456+00:00``."""
    return datetime.now(UTC).isoformat()


def wait_until(
    folder: Path,
    check: Callable[[], bool],
    timeout: float,
    poll: float,
    describe: Callable[[], str],
) -> None:
    """Re-check on every file event in ``folder`` (or every ``poll`` s) until ``timeout``."""
    deadline = time.monotonic() + timeout
    with DirectoryWatcher(folder, poll_interval=poll) as watcher:
        while True:
            if check():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(describe())
            watcher.wait(timeout=min(poll, left))


def copy_regular_files(src: Path, dest: Path) -> list[str]:
    """Copy regular files only; returns what was skipped (symlinks, pipes, ...).

    A job's output may hold symlinks to private files: they are never followed.
    """
    dest.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    if not src.is_dir() or src.is_symlink():
        return skipped
    for current, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(current)
        for d in list(dirnames):
            if (here / d).is_symlink():
                dirnames.remove(d)
                skipped.append((here / d).relative_to(src).as_posix())
        for name in filenames:
            path = here / name
            rel = path.relative_to(src).as_posix()
            if not stat.S_ISREG(path.lstat().st_mode):
                skipped.append(rel)
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel, follow_symlinks=False)
    return sorted(skipped)
