"""Waking on new files: one inotify descriptor per process for every watched folder, and
the polling fallback."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from syft_flwr.network import watch
from syft_flwr.network.atomic import atomic_write_text, is_temporary
from syft_flwr.network.watch import DirectoryWatcher

WRITE_LATER = (
    "import sys, time; from pathlib import Path\n"
    "from syft_flwr.network.atomic import atomic_write_text\n"
    "time.sleep(float(sys.argv[2]))\n"
    "atomic_write_text(Path(sys.argv[1]), 'hello')\n"
)


def write_from_another_process(path: Path, delay: float = 0.3) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITE_LATER, str(path), str(delay)])


def scan(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not is_temporary(p.name))


def wait_for_file(watcher: DirectoryWatcher, folder: Path, timeout: float = 20.0) -> list[str]:
    """The loop every consumer runs: rescan, then wait for a hint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = scan(folder)
        if found:
            return found
        watcher.wait(timeout=1.0)
    return []


def test_wakes_on_a_file_renamed_in_by_another_process(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox) as watcher:
        assert watcher.mode == "inotify"
        writer = write_from_another_process(inbox / "msg.json")
        try:
            assert watcher.wait(timeout=20) is True  # woken by the event, not a timeout
        finally:
            writer.wait(timeout=30)
        assert scan(inbox) == ["msg.json"]


def test_hidden_temporary_files_do_not_wake(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox) as watcher:
        (inbox / ".tmp-partial").write_text("half")
        assert watcher.wait(timeout=0.3) is False
        atomic_write_text(inbox / "done.json", "{}")
        assert watcher.wait(timeout=20) is True


def test_polling_mode_finds_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox, poll_interval=0.05, use_events=False) as watcher:
        assert watcher.mode == "polling"
        assert watcher.wait(timeout=5) is False  # returns after one poll interval
        writer = write_from_another_process(inbox / "msg.json", delay=0.2)
        try:
            assert wait_for_file(watcher, inbox) == ["msg.json"]
        finally:
            writer.wait(timeout=30)


def test_falls_back_to_polling_when_events_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "_inotify_calls", lambda: None)  # e.g. not Linux
    monkeypatch.setattr(watch, "_dispatcher", None)  # a dispatcher of its own for this test
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox, poll_interval=0.05) as watcher:
        assert watcher.mode == "polling"
        writer = write_from_another_process(inbox / "msg.json", delay=0.2)
        try:
            assert wait_for_file(watcher, inbox) == ["msg.json"]
        finally:
            writer.wait(timeout=30)
        assert watcher.arrivals() is None  # polling never names files: the caller scans


def test_notify_wakes_a_waiting_thread(tmp_path: Path) -> None:
    watcher = DirectoryWatcher(tmp_path / "inbox")
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(watcher.wait(timeout=30)))
    thread.start()
    time.sleep(0.05)
    watcher.notify()
    thread.join(timeout=30)
    assert woke == [True]
    watcher.close()
    watcher.close()  # closing twice is harmless


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_a_thousand_watchers_share_one_descriptor_and_one_thread(tmp_path: Path) -> None:
    """The kernel allows 128 inotify instances per user and select() 1,024 descriptors: one
    descriptor and one thread per process serve any number of folders."""
    before = open_descriptors()
    watchers = [DirectoryWatcher(tmp_path / f"inbox{i}") for i in range(1000)]
    try:
        assert all(w.mode == "inotify" for w in watchers)
        # inotify, epoll and a wake-up pipe, once per process
        assert open_descriptors() - before <= 4
        dispatchers = {id(w._dispatcher) for w in watchers}
        assert len(dispatchers) == 1 and watchers[0]._dispatcher._thread.is_alive()
        atomic_write_text(tmp_path / "inbox734" / "m.json", "{}")
        assert watchers[734].wait(timeout=20) is True
        assert watchers[734].arrivals() is None  # before its first scan, names are not known
        assert watchers[1].wait(timeout=0.2) is False  # only the folder's own watcher wakes
    finally:
        for w in watchers:
            w.close()


def test_on_arrival_is_called_for_each_batch_of_new_files(tmp_path: Path) -> None:
    calls = threading.Semaphore(0)
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox, on_arrival=calls.release) as watcher:
        watcher.arrivals()  # the caller's first scan
        atomic_write_text(inbox / "a.msg", "a")
        assert calls.acquire(timeout=20)
        assert watcher.arrivals() == ["a.msg"]


def test_two_watchers_of_one_folder_both_wake_and_one_closing_keeps_the_other(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    first, second = DirectoryWatcher(inbox), DirectoryWatcher(inbox)
    try:
        atomic_write_text(inbox / "a.msg", "a")
        assert first.wait(timeout=20) and second.wait(timeout=20)
        first.close()
        atomic_write_text(inbox / "b.msg", "b")
        assert second.wait(timeout=20)
    finally:
        first.close()
        second.close()


def test_a_deleted_folder_is_polled_once_it_comes_back(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox, poll_interval=0.05) as watcher:
        if watcher.mode != "inotify":
            pytest.skip("inotify only")
        inbox.rmdir()
        deadline = time.monotonic() + 20
        while watcher.mode != "polling" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.mode == "polling"
        inbox.mkdir()
        atomic_write_text(inbox / "x.msg", "x")
        assert wait_for_file(watcher, inbox) == ["x.msg"]


@pytest.mark.parametrize(
    ("events", "arrived", "complete"),
    [
        ([], [], True),
        ([(0x80, b".tmp-abc-x.msg")], [], True),  # a writer's temporary name, moved
        ([(0x80, b".tmp-abc-x.msg"), (0x80, b"x.msg"), (0x08, b"x.msg")], ["x.msg"], True),
        ([(0x80, b"b.msg"), (0x80, b"a.msg")], ["b.msg", "a.msg"], True),  # in arrival order
        ([(0x40000080, b"folder")], [], True),  # a folder moved in
        ([(0x08, b"")], [], True),  # about the watched folder itself, no file named
        ([(0x80, b"x.msg"), (0x4000, b"")], ["x.msg"], False),  # overflow: events were lost
    ],
)
def test_inotify_events_are_read_raw_and_name_finished_files(events, arrived, complete) -> None:
    data = b""
    for mask, name in events:
        padded = name + b"\0" * (16 - len(name) % 16) if name else b""
        data += struct.pack("iIII", 1, mask, 0, len(padded)) + padded
    names: dict[int, dict[str, None]] = {}
    gone: list[int] = []
    assert watch.parse_events(data, names, gone) is complete
    assert list(names.get(1, {})) == arrived
    assert gone == []


def test_an_ended_watch_is_reported_as_gone() -> None:
    names: dict[int, dict[str, None]] = {}
    gone: list[int] = []
    assert watch.parse_events(struct.pack("iIII", 7, 0x8000, 0, 0), names, gone)
    assert gone == [7] and names == {}


def test_arrivals_name_new_files_once_scanned(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    with DirectoryWatcher(inbox) as watcher:
        if watcher.mode != "inotify":
            pytest.skip("names come only from inotify")
        assert watcher.arrivals() is None  # not known yet: the caller scans first
        for name in ("b.msg", "a.msg"):
            atomic_write_text(inbox / name, name)
        (inbox / ".tmp-partial").write_text("half")
        assert watcher.wait(timeout=5)
        for _ in range(50):  # both events, even if the second came after the wake-up
            if watcher.wait(timeout=0.02) is False:
                break
        assert watcher.arrivals() == ["b.msg", "a.msg"]
        assert watcher.arrivals() == []  # each name once
