"""Contained jobs: the data scientist's code of a data owner's job runs in bubblewrap.

``bwrap.py`` builds the sandbox's command line, ``process.py`` enforces its limits,
``worker.py`` is the program inside (the ClientApp behind a pipe), ``client.py`` the trusted
node's side of that pipe, ``limits.py`` the owner's limits and the runner's spec, ``job.py``
the trusted node of a sandboxed Flower job (what the runner starts).
"""

from syft_flwr.sandbox.bwrap import bwrap_argv, bwrap_available, bwrap_path
from syft_flwr.sandbox.errors import BubblewrapMissingError, SandboxDied, SandboxError
from syft_flwr.sandbox.limits import (
    DEFAULT_LIMITS,
    SANDBOX_ENV,
    SandboxLimits,
    SandboxSpec,
    load_dataset_limits,
    save_dataset_limits,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SANDBOX_ENV",
    "BubblewrapMissingError",
    "SandboxDied",
    "SandboxError",
    "SandboxLimits",
    "SandboxSpec",
    "bwrap_argv",
    "bwrap_available",
    "bwrap_path",
    "load_dataset_limits",
    "save_dataset_limits",
]
