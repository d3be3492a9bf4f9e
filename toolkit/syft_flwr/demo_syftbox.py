"""``syft-flwr demo --syftbox``: the demo's parties as SyftBox clients of a loopback server.

A SyftBox server on 127.0.0.1 and one client per party (ds, do1, do2), each with its own data
folder under ``<folder>/syftbox/`` and in its own process group; the demo's workflow then runs
with each party on its own network root, everything between them going through the sync.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from syft_flwr.demo import DO_EMAILS, DS_EMAIL, DemoError, Where
from syft_flwr.syftbox.cluster import LocalSyftBox
from syft_flwr.syftbox.env import SyftBoxUnavailable, unavailable_reason

NAMES = {DS_EMAIL: "ds", DO_EMAILS[0]: "do1", DO_EMAILS[1]: "do2"}


def start_syftbox(folder, stack: contextlib.ExitStack) -> tuple[Where, str]:
    """Start the server and the three clients (stopped when ``stack`` closes)."""
    reason = unavailable_reason()
    if reason is not None:
        raise DemoError(
            f"SyftBox is not installed here, so `demo --syftbox` cannot run ({reason}); "
            "`syft-flwr demo` runs the same workflow on one local folder without it"
        )
    _stop_on_sigterm(stack)
    box = stack.enter_context(LocalSyftBox(folder / "syftbox"))
    try:
        box.start_server()
        for email, name in NAMES.items():
            box.add_client(email, name)
    except SyftBoxUnavailable as exc:
        raise DemoError(str(exc)) from exc
    roots = {e: (c.data_dir.parent, c.data_dir.name) for e, c in box.clients.items()}
    note = f"server {box.server_url}, clients {', '.join(NAMES.values())}"
    return Where(roots, synced=True), note


def _stop_on_sigterm(stack: contextlib.ExitStack) -> None:
    """A SIGTERM ends the demo like Ctrl-C, so the server and clients are stopped too."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    stack.callback(signal.signal, signal.SIGTERM, previous)
