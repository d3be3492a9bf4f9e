"""Waiting for new files in a folder: file events, with a polling fallback.

On Linux the waiting thread blocks on its own inotify descriptor (inotify_simple): no other
thread sits between the kernel's event and the waiter, which keeps a message round trip near
a millisecond. Elsewhere (or when inotify is unavailable) watchdog's observer delivers the
events; failing that, the folder is polled.

With inotify, the watcher also collects the names of the files that arrived
(:meth:`DirectoryWatcher.arrivals`), so a caller need not scan the folder after every
wake-up; the names are None until the caller's first scan, without inotify, and after the
kernel reported lost events. A caller scans then, and after a quiet spell, so a missed or
coalesced event costs at most one ``poll_interval`` (or one rescan interval). Use it as::

    with DirectoryWatcher(inbox) as watcher:
        scan = True
        while running:
            names = watcher.arrivals()
            handle(list_folder(inbox) if scan or names is None else names)
            scan = not watcher.wait(timeout=1.0)
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import sys
import threading
import time
from pathlib import Path

from loguru import logger

from syft_flwr.network.atomic import is_temporary

_observer_lock = threading.Lock()
_observer = None  # one watchdog Observer (one thread) shared by every watcher of the process


def _shared_observer():
    global _observer
    with _observer_lock:
        if _observer is None or not _observer.is_alive():
            from watchdog.observers import Observer

            observer = Observer()
            observer.daemon = True
            observer.start()
            _observer = observer
        return _observer


#: struct inotify_event: wd, mask, cookie, len (then ``len`` bytes of NUL-padded name)
_INOTIFY_EVENT = struct.Struct("iIII")
_IN_Q_OVERFLOW = 0x4000
_IN_ISDIR = 0x40000000
_READ_BYTES = 64 * 1024


def _drain_inotify(fd: int, arrived: dict[str, None]) -> bool:
    """Read every pending event of a non-blocking inotify descriptor into ``arrived`` (names of
    finished files, in order; a writer's hidden temporary names and folders are skipped).
    Returns False if events were lost (the queue overflowed: only a rescan finds what they
    were about). Parsed here, one ``read`` per batch: every message's wake-up goes through it."""
    complete = True
    while True:
        try:
            data = os.read(fd, _READ_BYTES)
        except BlockingIOError:
            return complete
        pos, end = 0, len(data)
        while pos < end:
            _, mask, _, size = _INOTIFY_EVENT.unpack_from(data, pos)
            start = pos + _INOTIFY_EVENT.size
            pos = start + size
            if mask & _IN_Q_OVERFLOW:
                complete = False
            elif size and not mask & _IN_ISDIR:
                name = os.fsdecode(data[start:pos].rstrip(b"\0"))
                if not is_temporary(name):
                    arrived[name] = None
        if end < _READ_BYTES - 4096:  # less than a full buffer: nothing more is queued
            return complete


class DirectoryWatcher:
    """Wakes a waiting thread when a finished (non-hidden) file appears in ``directory``."""

    def __init__(self, directory: Path, *, poll_interval: float = 0.5, use_events: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        self._changed = threading.Event()
        #: names of files that arrived since the last :meth:`arrivals` (inotify mode only)
        self._arrived: dict[str, None] = {}
        self._complete = False  # nothing is known before the caller's first scan
        self._watch = None
        self._inotify = None
        self.mode = "polling"
        if use_events and not self._start_inotify():
            self._start_events()

    def _start_inotify(self) -> bool:
        """Watch with a private inotify descriptor; False where that is not possible."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            from inotify_simple import INotify, flags

            inotify = INotify(nonblocking=True)
            try:
                # a rename finishes an atomic write; CLOSE_WRITE catches a file written in
                # place. (CREATE would only wake the waiter for a file not yet written.)
                inotify.add_watch(str(self.directory), flags.MOVED_TO | flags.CLOSE_WRITE)
                self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            except BaseException:
                inotify.close()
                raise
        except Exception as exc:  # descriptor limits, missing library
            logger.debug(f"inotify unavailable for {self.directory} ({exc}); trying watchdog")
            return False
        self._inotify = inotify
        self.mode = "inotify"
        return True

    def _start_events(self) -> None:
        try:
            from watchdog.events import (
                DirCreatedEvent,
                DirMovedEvent,
                FileCreatedEvent,
                FileMovedEvent,
                FileSystemEventHandler,
            )

            changed = self._changed

            class _Handler(FileSystemEventHandler):
                def on_any_event(self, event) -> None:  # noqa: ANN001 - watchdog's type
                    path = getattr(event, "dest_path", "") or event.src_path
                    if not is_temporary(Path(str(path)).name):
                        changed.set()

            self._observer = _shared_observer()
            # only appearances: inotify then skips modify/close/delete events, which halves
            # the wake-up latency (fewer events through watchdog's threads)
            appear = [FileCreatedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent]
            self._watch = self._observer.schedule(
                _Handler(), str(self.directory), event_filter=appear
            )
            self.mode = "events"
        except Exception as exc:  # inotify limits, unsupported platforms
            logger.warning(f"file events unavailable for {self.directory} ({exc}); polling")
            self._watch = None

    def arrivals(self) -> list[str] | None:
        """Names of the finished files that arrived since the last call, oldest first, or
        None when they are not all known: before the first call, without inotify, or after
        lost events. On None the caller scans the folder (and everything is known again
        from then on). A named file may be gone already; the caller's read finds out."""
        complete, self._complete = self._complete, self._inotify is not None
        names, self._arrived = list(self._arrived), {}
        return names if complete else None

    def notify(self) -> None:
        """Wake the waiter (used to stop a loop from another thread)."""
        self._changed.set()
        if self._inotify is not None:
            with contextlib.suppress(OSError):  # a full pipe already wakes the waiter
                os.write(self._wake_w, b"x")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a file event, ``timeout`` or (when polling) ``poll_interval``.

        Returns True if an event woke the caller. The caller rescans either way.
        """
        if self._inotify is not None:
            return self._wait_inotify(timeout)
        limit = self.poll_interval if self.mode == "polling" else timeout
        if timeout is not None and limit is not None:
            limit = min(limit, timeout)
        woke = self._changed.wait(limit)
        self._changed.clear()
        return woke

    def _wait_inotify(self, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        events = self._inotify.fileno()
        fds = [events, self._wake_r]
        # a local flag, not the Event: setting an Event costs a lock and a notify per wake-up
        woke = self._changed.is_set()
        while not woke:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(fds, [], [], left)
            if not ready:
                break  # the timeout
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                woke = True
            if events in ready:
                lost = not _drain_inotify(events, self._arrived)
                if lost:
                    self._complete = False
                woke = woke or lost or bool(self._arrived)
        if self._changed.is_set():
            self._changed.clear()
        return woke

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._inotify = None
        if self._watch is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._observer.unschedule(self._watch)
            self._watch = None

    def __enter__(self) -> DirectoryWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
