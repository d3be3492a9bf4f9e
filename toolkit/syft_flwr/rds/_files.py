"""Small file helpers of the RDS layer: timestamps, waiting, copying plain files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from syft_flwr.network.atomic import TMP_PREFIX
from syft_flwr.network.safe_read import is_plain_path
from syft_flwr.network.watch import DirectoryWatcher


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


def plain_folder(path: Path, base: Path | None = None) -> Path:
    """``path``, unless a symlink or a file was put in its place, or in place of a folder
    between ``base`` and it (PermissionError).

    The owner writes into a job's inbox folder: a link planted there would make it write
    somewhere else.
    """
    if (
        path.is_symlink()
        or (path.exists() and not path.is_dir())
        or (base is not None and path.exists() and not is_plain_path(path, base))
    ):
        raise PermissionError(
            f"{path} is no longer a plain folder (a symlink or file was put in its place): "
            "someone other than the submitter wrote into the inbox; reject the job"
        )
    return path


def write_json_at(dir_fd: int, name: str, obj: object) -> None:
    """Atomically write ``obj`` as JSON to ``name`` inside the folder ``dir_fd``."""
    data = (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    tmp = f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
