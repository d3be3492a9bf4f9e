"""Keeping CPython's cyclic garbage collector off objects that live as long as the process.

Importing flwr, numpy and matplotlib creates a few hundred thousand objects that stay alive
until the process ends, and almost no garbage. The collector nevertheless walks all of them:
the first collections after the imports took about 0.16 s of a one-round simulation, and
the passes at interpreter exit about 0.5 s. Two tools:

- :func:`loading_long_lived` around the loading of flwr, the transport and a Flower app: no
  collection in the middle of the imports, and the first time in a process, what they
  loaded is frozen (``gc.freeze()``) so later collections skip it;
- :func:`skip_collections_at_exit`: ``gc.freeze()`` when the process exits.

Freezing happens once per process, right after a collection of what came before, so the
only garbage it can keep for good is the little made while that first load ran. (Freezing
for every run would keep the garbage of the runs before for good, and a notebook's memory
would grow with every run.) Reference counting is untouched: a frozen object that nothing
points to any more is freed as usual; only cycles among objects that existed at the first
load are never collected.

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
_frozen = False


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
def loading_long_lived() -> Iterator[None]:
    """Load what stays loaded inside: :func:`paused`, and on the first successful load in
    this process a collection before and ``gc.freeze()`` after."""
    global _frozen
    with _lock:
        first = not _frozen
        if first:
            gc.collect()  # what came before: no garbage of it is frozen
    with paused():
        yield
        with _lock:
            if first and not _frozen:
                gc.freeze()  # before collections come back on: none walks the imports
                _frozen = True


def skip_collections_at_exit() -> None:
    """Freeze the garbage collector when this process exits (registered once per process).

    ``syft_flwr.run`` (and so ``syft-flwr run``) and a generated ``main.py`` call this.
    """
    global _registered
    with _lock:
        if not _registered:
            atexit.register(gc.freeze)  # runs before the exit hooks registered earlier
            _registered = True
