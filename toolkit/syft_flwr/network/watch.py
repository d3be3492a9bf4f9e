"""Waking on new files: one inotify instance per process serves every watched folder.

A :class:`DirectoryWatcher` subscribes one folder. Behind every watcher of the process sits
one dispatcher thread that blocks on a single inotify descriptor through ``selectors``
(epoll on Linux: no descriptor limit, unlike ``select()``), reads the kernel's events in
batches, and hands each file name to the watcher of its folder: the names are queued there,
a waiting thread is woken, and an ``on_arrival`` callback (a worker pool's "this inbox has
work") is called. A thousand inboxes cost one descriptor, one thread and no CPU while no
file arrives.

Where inotify is not available (another OS, the per-user instance or watch limit reached),
the dispatcher polls those folders every ``poll_interval`` instead, and their watchers say
that their names are not known (:meth:`DirectoryWatcher.arrivals` returns None: the caller
scans the folder). Use it as::

    with DirectoryWatcher(inbox) as watcher:
        while running:
            names = watcher.arrivals()  # None at first and after lost events: scan then
            handle(list_folder(inbox) if names is None else names)
            watcher.wait(timeout=1.0)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import selectors
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from syft_flwr.network.atomic import is_temporary

#: struct inotify_event: wd, mask, cookie, len (then ``len`` bytes of NUL-padded name)
_INOTIFY_EVENT = struct.Struct("iIII")
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_IGNORED = 0x00008000
_IN_Q_OVERFLOW = 0x00004000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_READ_BYTES = 256 * 1024


def _inotify_calls():  # noqa: ANN202 - ctypes functions
    """libc's inotify_init1 / inotify_add_watch / inotify_rm_watch, or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.inotify_init1, libc.inotify_add_watch, libc.inotify_rm_watch
    except (OSError, AttributeError):
        return None


def parse_events(data: bytes, arrived: dict[int, dict[str, None]], gone: list[int]) -> bool:
    """Parse a batch of ``struct inotify_event`` records: the names of finished files (a
    writer's hidden temporary names and folders skipped) go to ``arrived`` by watch
    descriptor, in order; watches that ended go to ``gone``. Returns False if the kernel
    dropped events (its queue overflowed: only a scan finds what they were about)."""
    complete = True
    pos, end = 0, len(data)
    while pos < end:
        wd, mask, _, size = _INOTIFY_EVENT.unpack_from(data, pos)
        start = pos + _INOTIFY_EVENT.size
        pos = start + size
        if mask & _IN_Q_OVERFLOW:
            complete = False
        elif mask & _IN_IGNORED:
            gone.append(wd)
        elif size and not mask & _IN_ISDIR:
            name = os.fsdecode(data[start:pos].rstrip(b"\0"))
            if not is_temporary(name):
                arrived.setdefault(wd, {})[name] = None
    return complete


class _Dispatcher:
    """The process's one inotify descriptor and the thread that serves every watcher."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_wd: dict[int, list[DirectoryWatcher]] = {}
        self._wd_of: dict[str, int] = {}
        self._polled: list[DirectoryWatcher] = []
        self._poll_interval: float | None = None
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._calls = _inotify_calls()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._calls is not None:
            fd = self._calls[0](_IN_NONBLOCK | _IN_CLOEXEC)
            if fd < 0:
                err = os.strerror(ctypes.get_errno())
                logger.debug(f"inotify unavailable ({err}); watched folders are polled")
            else:
                self._fd = fd
        self._pid = os.getpid()

    # -- subscriptions -----------------------------------------------------------------------
    def add(self, watcher: DirectoryWatcher, use_events: bool) -> str:
        """Start serving ``watcher``; returns its mode, "inotify" or "polling"."""
        folder = str(watcher.directory)
        with self._lock:
            wd = self._wd_of.get(folder) if use_events else None
            if wd is None and use_events and self._fd >= 0:
                wd = self._calls[1](self._fd, os.fsencode(folder), _IN_MOVED_TO | _IN_CLOSE_WRITE)
                if wd < 0:
                    err = os.strerror(ctypes.get_errno())
                    logger.debug(f"cannot watch {folder} with inotify ({err}); polling it")
                    wd = None
            if wd is not None:
                self._wd_of[folder] = wd
                self._by_wd.setdefault(wd, []).append(watcher)
                mode = "inotify"
            else:
                self._polled.append(watcher)
                interval = watcher.poll_interval
                self._poll_interval = min(self._poll_interval or interval, interval)
                mode = "polling"
            self._ensure_thread()
        if mode == "polling":
            self._wake()  # the thread re-reads its poll interval
        return mode

    def remove(self, watcher: DirectoryWatcher) -> None:
        folder = str(watcher.directory)
        with self._lock:
            if watcher in self._polled:
                self._polled.remove(watcher)
                self._poll_interval = min((w.poll_interval for w in self._polled), default=None)
                return
            wd = self._wd_of.get(folder)
            watchers = self._by_wd.get(wd, []) if wd is not None else []
            if watcher in watchers:
                watchers.remove(watcher)
            if wd is not None and not watchers:
                self._by_wd.pop(wd, None)
                del self._wd_of[folder]
                self._calls[2](self._fd, wd)  # its IN_IGNORED event is dropped below

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._serve, name="syft-flwr-watcher", daemon=True
            )
            self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already wakes the thread
            os.write(self._wake_w, b"x")

    # -- the thread --------------------------------------------------------------------------
    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        if self._fd >= 0:
            selector.register(self._fd, selectors.EVENT_READ)
        next_poll = time.monotonic()
        while True:
            interval = self._poll_interval
            timeout = None if interval is None else max(0.0, next_poll - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.fd == self._wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                else:
                    self._read_events()
            if interval is not None and time.monotonic() >= next_poll:
                self._poll()
                next_poll = time.monotonic() + interval

    def _read_events(self) -> None:
        """Hand every queued event's file name to the watchers of its folder."""
        arrived: dict[int, dict[str, None]] = {}
        gone: list[int] = []  # folders deleted or unmounted: their watches are over
        lost = False
        while True:
            try:
                data = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                break
            lost = not parse_events(data, arrived, gone) or lost
            if len(data) < _READ_BYTES - 4096:  # less than a full buffer: nothing more queued
                break
        with self._lock:
            for wd in gone:  # a watch we did not remove: poll its watchers from now on
                for watcher in self._by_wd.pop(wd, ()):
                    watcher.mode = "polling"
                    self._polled.append(watcher)
                    self._poll_interval = min(self._poll_interval or 1e9, watcher.poll_interval)
                self._wd_of = {f: w for f, w in self._wd_of.items() if w != wd}
            if lost:  # the kernel dropped events: every watcher scans its folder again
                targets = [(w, None) for ws in self._by_wd.values() for w in ws]
            else:
                targets = [
                    (w, names) for wd, names in arrived.items() for w in self._by_wd.get(wd, ())
                ]
        for watcher, names in targets:
            watcher._deliver(names)

    def _poll(self) -> None:
        with self._lock:
            polled = list(self._polled)
        for watcher in polled:
            watcher._poll()


_dispatcher: _Dispatcher | None = None
_dispatcher_lock = threading.Lock()


def _shared_dispatcher() -> _Dispatcher:
    """The process's dispatcher (a new one in a forked child: threads do not survive fork)."""
    global _dispatcher
    with _dispatcher_lock:
        if _dispatcher is None or _dispatcher._pid != os.getpid():
            _dispatcher = _Dispatcher()
        return _dispatcher


class DirectoryWatcher:
    """Wakes a waiting thread (and calls ``on_arrival``) when a finished, non-hidden file
    appears in ``directory``; collects the names of those files for :meth:`arrivals`.

    ``on_arrival`` is called on the watcher thread of the process and must only hand the
    work on (e.g. submit it to a pool), never do it.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        poll_interval: float = 0.5,
        use_events: bool = True,
        on_arrival: Callable[[], None] | None = None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        self._on_arrival = on_arrival
        self._lock = threading.Lock()
        self._woken = threading.Event()
        #: names of files that arrived since the last :meth:`arrivals`, oldest first
        self._arrived: dict[str, None] = {}
        self._complete = False  # nothing is known before the caller's first scan
        self._seen: set[str] = set()  # polling: the names of the last look
        self._closed = False
        self._dispatcher = _shared_dispatcher()
        self.mode = self._dispatcher.add(self, use_events)
        if self.mode == "polling":
            self._seen = self._listing()

    # -- what the dispatcher calls ------------------------------------------------------------
    def _deliver(self, names: dict[str, None] | None) -> None:
        """New files (None: some were lost, the caller must scan)."""
        with self._lock:
            if names is None:
                self._complete = False
            else:
                self._arrived.update(names)
        self._woken.set()
        if self._on_arrival is not None:
            try:
                self._on_arrival()
            except Exception as exc:  # a broken callback must not stop every other watcher
                logger.error(f"watcher callback for {self.directory} failed: {exc!r}")

    def _listing(self) -> set[str]:
        try:
            with os.scandir(self.directory) as it:
                return {e.name for e in it if not is_temporary(e.name)}
        except OSError:
            return set()

    def _poll(self) -> None:
        names = self._listing()
        new = names - self._seen
        self._seen = names
        if new:
            self._deliver(None)

    # -- what the owner calls ----------------------------------------------------------------
    def arrivals(self) -> list[str] | None:
        """Names of the finished files that arrived since the last call, oldest first, or
        None when they are not all known: before the first call, when polling, and after
        lost events. On None the caller scans the folder (and everything is known again
        from then on). A named file may be gone already; the caller's read finds out."""
        with self._lock:
            complete, self._complete = self._complete, self.mode == "inotify"
            names, self._arrived = list(self._arrived), {}
        return names if complete else None

    def pending(self) -> bool:
        """Whether a file arrived (or events were lost) since the last :meth:`arrivals`."""
        return bool(self._arrived) or not self._complete

    def notify(self) -> None:
        """Wake the waiter (used to stop a loop from another thread)."""
        self._woken.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a file arrives, :meth:`notify` or ``timeout``. Returns True if woken
        before the timeout. Arrivals already queued return at once."""
        woke = self._woken.wait(timeout)
        self._woken.clear()
        return woke

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._dispatcher.remove(self)

    def __enter__(self) -> DirectoryWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
