"""Inbox folders: listing message files, dropping them, setting bad ones aside."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from loguru import logger

from syft_flwr.network import Network, atomic_write_bytes, atomic_write_text, is_temporary
from syft_flwr.transport.codec import EncodedMessage


def private_app_dir(network: Network, email: str, app_name: str) -> Path:
    """``private/<email>/flwr/<app>/``: a party's own records for an app (never synced)."""
    return network.private_dir(email) / "flwr" / app_name


def list_inbox(inbox: Path) -> list[Path]:
    """Finished files in ``inbox`` (temporary/hidden names skipped), oldest first."""
    entries: list[tuple[int, str, Path]] = []
    try:
        with os.scandir(inbox) as it:
            for entry in it:
                if is_temporary(entry.name):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    mtime = entry.stat(follow_symlinks=False).st_mtime_ns
                except FileNotFoundError:
                    continue
                entries.append((mtime, entry.name, Path(entry.path)))
    except FileNotFoundError:
        return []
    entries.sort()
    return [path for _, _, path in entries]


def write_message(inbox: Path, encoded: EncodedMessage) -> Path:
    """Drop ``encoded`` into ``inbox`` atomically (no fsync: a lost message is re-sent or
    times out, and the hot path cannot afford a disk flush per message)."""
    path = inbox / encoded.envelope.file_name
    atomic_write_bytes(path, encoded.buffers, durable=False)  # no join: no copy of the arrays
    return path


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path | None:
    """Move a bad file out of an inbox, with a note saying why. Returns its new path."""
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / f"{time.time_ns()}-{path.name}"
    try:
        try:
            os.replace(path, target)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: inbox and private area on different file systems
                raise
            shutil.move(str(path), str(target))
    except FileNotFoundError:
        return None
    atomic_write_text(target.with_name(target.name + ".reason.txt"), reason + "\n", durable=False)
    logger.warning(f"quarantined {path.name} from {path.parent} to {target}: {reason}")
    return target
