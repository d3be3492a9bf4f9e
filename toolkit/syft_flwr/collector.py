"""Keeping CPython's cyclic garbage collector off objects that live as long as the process.

Importing flwr, numpy and matplotlib creates a few hundred thousand objects that stay alive
until the process ends, and almost no garbage. The collector nevertheless walks all of them
in each full collection (about 0.1 s apiece on a small machine) and in several passes at
interpreter exit (about 0.5 s). Two small tools:

- :func:`paused` while a Flower app and its imports load: no collection in the middle of
  the imports;
- :func:`skip_collections_at_exit`: ``gc.freeze()`` when the process exits.

(Freezing the imports for the length of a run would save another ~50 ms, but it would also
freeze the garbage of earlier runs in the same process, which runs back to back would then
never collect: a notebook's memory would grow with every run.)

Nothing that is promised is lost at exit. Open files are flushed and closed by their own
hooks and reference counts, temporary folders by ``weakref.finalize`` (an exit hook of its
own), and Python never promises to run ``__del__`` of objects still alive at exit. Objects
made during the teardown itself are collected as usual.
"""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_registered = False


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside (explicit ``gc.collect()`` still works)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def skip_collections_at_exit() -> None:
    """Freeze the garbage collector when this process exits (registered once per process).

    ``syft_flwr.run`` (and so ``syft-flwr run``) and a generated ``main.py`` call this.
    """
    global _registered
    with _lock:
        if not _registered:
            atexit.register(gc.freeze)  # runs before the exit hooks registered earlier
            _registered = True
