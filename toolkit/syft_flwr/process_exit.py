"""A quick exit for processes that ran Flower: no garbage-collector passes at shutdown.

When CPython exits, it tears its modules down with several passes of the cyclic garbage
collector over every object still alive. With flwr, numpy and matplotlib loaded that is more
than 100,000 objects, and on a small machine about half a second: as long as a one-round
simulation's own work. ``gc.freeze()`` at exit takes those objects out of the collector's
sight, and the operating system reclaims their memory as it would anyway.

Nothing that is promised is lost. Open files are flushed and closed by their own hooks and
reference counts, temporary folders by ``weakref.finalize`` (an exit hook of its own), and
Python never promises to run ``__del__`` of objects still alive at exit. Objects created
during the teardown itself are collected as usual.
"""

from __future__ import annotations

import atexit
import gc
import threading

_lock = threading.Lock()
_registered = False


def skip_collections_at_exit() -> None:
    """Freeze the garbage collector when this process exits (once per process).

    ``syft_flwr.run`` (and so ``syft-flwr run``) and a generated ``main.py`` call this.
    """
    global _registered
    with _lock:
        if not _registered:
            atexit.register(gc.freeze)  # runs before the exit hooks registered earlier
            _registered = True
