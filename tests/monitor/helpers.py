"""Small helpers of the monitor tests that start real external programs."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A port that was free a moment ago (for programs that must be told their port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, step: float = 0.2) -> T:
    """Call ``probe`` until it returns something truthy; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # the program may not be up yet
            last_error = exc
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")
