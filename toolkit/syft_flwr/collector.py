"""Keeping CPython's cyclic garbage collector off objects that live as long as the process.

Importing flwr, numpy and matplotlib creates a few hundred thousand objects that stay alive
until the process ends, and almost no garbage. The collector nevertheless walks all of them
in each full collection (about 0.1 s apiece on a small machine, twice in a one-round
simulation) and in several passes at interpreter exit (about 0.5 s). Three small tools:

- :func:`paused` while a Flower app and its imports load: no collection in the middle of
  the imports;
- :func:`long_lived_frozen` around a simulation: collections skip every object that existed
  when it began, while garbage made during the run is collected as usual; afterwards the
  frozen objects are back under the collector, so nothing is kept for good;
- :func:`skip_collections_at_exit`: ``gc.freeze()`` when the process exits.

Nothing that is promised is lost at exit. Open files are flushed and closed by their own
hooks and reference counts, temporary folders by ``weakref.finalize`` (an exit hook of its
own), and Python never promises to run ``__del__`` of objects still alive at exit. Objects
made during the teardown itself are collected as usual.

The collector's state is per process. Two simulations overlapping in one process may
unfreeze each other's objects early, which only costs the time saved, never a collection.
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


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Collections inside skip the objects that existed on entry."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def skip_collections_at_exit() -> None:
    """Freeze the garbage collector when this process exits (registered once per process).

    ``syft_flwr.run`` (and so ``syft-flwr run``) and a generated ``main.py`` call this.
    """
    global _registered
    with _lock:
        if not _registered:
            atexit.register(gc.freeze)  # runs before the exit hooks registered earlier
            _registered = True
