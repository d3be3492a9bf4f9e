"""Where the SyftBox programs are: a virtual environment of their own (``make syftbox-env``).

SyftBox 0.4.0 pins old typer, fastapi and psutil, so it never shares the toolkit's
environment; the toolkit only runs its ``syftbox`` and ``uvicorn`` programs.
"""

from __future__ import annotations

import os
from pathlib import Path

from syft_flwr.errors import SyftFlwrError

#: points at the SyftBox virtual environment (default: ``.venv-syftbox`` of the repository)
VENV_ENV = "SYFT_FLWR_SYFTBOX_VENV"
REPO = Path(__file__).resolve().parents[3]
DEFAULT_VENV = REPO / ".venv-syftbox"


class SyftBoxUnavailable(SyftFlwrError, RuntimeError):
    """The SyftBox programs are not installed where the toolkit looks for them."""


def syftbox_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or DEFAULT_VENV)


def syftbox_bin(program: str) -> Path:
    """The path of ``program`` (``syftbox`` or ``uvicorn``) in the SyftBox environment."""
    path = syftbox_venv() / "bin" / program
    if not os.access(path, os.X_OK):
        raise SyftBoxUnavailable(
            f"{path} not found: run `make syftbox-env` (installs syftbox 0.4.0 in "
            f"{DEFAULT_VENV.name}) or set ${VENV_ENV} to a virtual environment that has it"
        )
    return path


def unavailable_reason() -> str | None:
    """Why SyftBox cannot run here, or None when it can."""
    try:
        syftbox_bin("syftbox")
        syftbox_bin("uvicorn")
    except SyftBoxUnavailable as exc:
        return str(exc)
    return None
