"""syft_flwr: run Flower apps where the data lives.

A data scientist bootstraps an ordinary Flower app (:func:`bootstrap`), simulates it on the
data owners' mock data (:func:`run`), and submits it as a job to each data owner, who reviews,
approves and runs it on the private data (:mod:`syft_flwr.rds`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Flower reads this once at import; data owners expect nothing to leave but approved messages.
os.environ["FLWR_TELEMETRY_ENABLED"] = "0"

__version__ = "0.1.0"

# A library is quiet unless the application asks (syft_flwr.enable_logging, the CLI, main.py).
from loguru import logger as _logger  # noqa: E402

_logger.disable("syft_flwr")

# Eager: the submodule shares the function's name, and must not shadow it.
from syft_flwr.bootstrap import bootstrap  # noqa: E402
from syft_flwr.logs import enable_logging  # noqa: E402

if TYPE_CHECKING:
    from syft_flwr.simulation import SimulationError, SimulationResult, run

_LAZY = {
    "run": "syft_flwr.simulation",
    "SimulationError": "syft_flwr.simulation",
    "SimulationResult": "syft_flwr.simulation",
}

__all__ = [
    "SimulationError",
    "SimulationResult",
    "__version__",
    "bootstrap",
    "enable_logging",
    "run",
]


def __getattr__(name: str) -> Any:
    """Import the public API on first use, so `import syft_flwr` stays cheap."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'syft_flwr' has no attribute {name!r}")
