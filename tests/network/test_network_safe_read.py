"""network/safe_read.py: regular files only, never followed, never blocking, bounded."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from syft_flwr.network.safe_read import (
    UnsafeFileError,
    is_plain_path,
    open_plain_dir,
    read_regular,
    regular_files,
)


def test_a_regular_file_is_read_exactly_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, 100) == b"x" * 100
    with pytest.raises(UnsafeFileError, match="100 bytes, over the limit of 99"):
        read_regular(path, 99)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", "status")


def test_links_fifos_folders_sockets_and_devices_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("private")
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "zero").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would hang forever
    (tmp_path / "folder").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    try:
        for name, what in [
            ("link", "symlink"),
            ("zero", "symlink"),
            ("fifo", "FIFO"),
            ("folder", "folder"),
            ("sock", "socket"),
        ]:
            with pytest.raises(UnsafeFileError, match=what):
                read_regular(tmp_path / name, "status")
    finally:
        server.close()
    with pytest.raises(UnsafeFileError, match="character device"):
        read_regular("/dev/null", "status")


def test_regular_files_of_a_folder_refuse_any_link(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.csv").write_text("1")
    (tmp_path / "a" / ".hidden").write_text("skipped")
    assert regular_files(tmp_path / "a") == ["b/x.csv"]
    (tmp_path / "a" / "b" / "y.csv").symlink_to(tmp_path / "a" / "b" / "x.csv")
    with pytest.raises(UnsafeFileError, match="y.csv.*symlink"):
        regular_files(tmp_path / "a")


def test_plain_paths_and_folders_opened_without_following(tmp_path: Path) -> None:
    base = tmp_path / "site"
    (base / "app" / "inbox").mkdir(parents=True)
    assert is_plain_path(base / "app" / "inbox", base)
    fd = open_plain_dir(base / "app" / "inbox", base)
    os.close(fd)
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    (base / "app").rename(tmp_path / "app-moved")
    (base / "app").symlink_to(tmp_path / "app-moved", target_is_directory=True)
    assert not is_plain_path(base / "app" / "inbox", base)
    with pytest.raises(OSError):
        open_plain_dir(base / "app" / "inbox", base)
    assert not is_plain_path(elsewhere, base)  # not below the base at all
