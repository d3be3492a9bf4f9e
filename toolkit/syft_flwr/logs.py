"""The toolkit's logging, as a library's should be: silent unless the application asks.

``import syft_flwr`` disables the package's loguru records (``logger.disable("syft_flwr")``);
an application turns them on with :func:`enable_logging` (the CLI, a generated ``main.py`` and
the notebooks do, at INFO). :func:`log_failure` ends a failure in one line, with the traceback
only at DEBUG.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any, TextIO

from loguru import logger

PACKAGE = "syft_flwr"
LEVEL_ENV = "SYFT_FLWR_LOG_LEVEL"
FORMAT = "{time:HH:mm:ss} | {level: <7} | {message}"

_lock = threading.Lock()
_sink_id: int | None = None


def enable_logging(level: str = "INFO", sink: TextIO | Any = None, fmt: str = FORMAT) -> int:
    """Turn the toolkit's records on and show those at ``level`` and above on ``sink``
    (default: stderr). Replaces loguru's default DEBUG handler and any sink an earlier call
    added; returns the new sink's id."""
    global _sink_id
    logger.enable(PACKAGE)
    with _lock:
        for old in (0, _sink_id):  # 0: loguru's default handler, at DEBUG
            if old is not None:
                with contextlib.suppress(ValueError):  # already removed
                    logger.remove(old)
        _sink_id = logger.add(sink if sink is not None else sys.stderr, level=level, format=fmt)
        return _sink_id


def disable_logging() -> None:
    """The library's default: no record of the toolkit reaches any sink."""
    logger.disable(PACKAGE)


def log_failure(message: str, exc: BaseException) -> None:
    """Log ``exc``'s traceback at DEBUG, then ``message`` and the exception in one ERROR line."""
    logger.opt(exception=exc).debug(f"traceback of: {message}")
    logger.error(f"{message}: {type(exc).__name__}: {exc}")
