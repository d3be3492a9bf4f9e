"""Waiting for new files in a folder: inotify through watchdog, with a polling fallback.

An event is only a wake-up hint; the caller always rescans the folder, so a missed or
coalesced event costs at most one ``poll_interval``. Use it as::

    with DirectoryWatcher(inbox) as watcher:
        while running:
            handle(scan(inbox))
            watcher.wait(timeout=1.0)
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from loguru import logger

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


class DirectoryWatcher:
    """Wakes a waiting thread when a finished (non-hidden) file appears in ``directory``."""

    def __init__(self, directory: Path, *, poll_interval: float = 0.5, use_events: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        self._changed = threading.Event()
        self._watch = None
        self.mode = "polling"
        if use_events:
            self._start_events()

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
                    if not Path(str(path)).name.startswith("."):
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

    def notify(self) -> None:
        """Wake the waiter (used to stop a loop from another thread)."""
        self._changed.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a file event, ``timeout`` or (when polling) ``poll_interval``.

        Returns True if an event woke the caller. The caller rescans either way.
        """
        limit = self.poll_interval if self.mode == "polling" else timeout
        if timeout is not None and limit is not None:
            limit = min(limit, timeout)
        woke = self._changed.wait(limit)
        self._changed.clear()
        return woke

    def close(self) -> None:
        if self._watch is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._observer.unschedule(self._watch)
            self._watch = None

    def __enter__(self) -> DirectoryWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
