"""Helpers a Flower app calls to find its data, wherever it runs.

The data path of the datasite the code runs for is set by the toolkit: in a thread of a
simulation through a context variable, in a data owner's job through ``DATA_DIR``.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syft_flwr.errors import EXIT_USAGE, SyftFlwrError

DATA_DIR_ENV = "DATA_DIR"
_dataset_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "syft_flwr_dataset_path", default=None
)


class DatasetPathError(SyftFlwrError, RuntimeError):
    """The ClientApp asked for its data but the toolkit did not provide a data path."""

    exit_code = EXIT_USAGE  # no data folder given


@contextmanager
def dataset_path_context(path: Path | str) -> Iterator[Path]:
    """Make ``path`` what :func:`get_syftbox_dataset_path` returns in this thread/context."""
    path = Path(path)  # once: this runs for every message a node serves
    token = _dataset_path.set(path)
    try:
        yield path
    finally:
        _dataset_path.reset(token)


def get_syftbox_dataset_path() -> Path:
    """The folder holding this datasite's data (mock data in a simulation, private in a job)."""
    path = _dataset_path.get()
    if path is None and os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV])
    if path is None:
        raise DatasetPathError(
            "no dataset path: this code is not running under syft_flwr. Load data with "
            "syft_flwr.utils.get_syftbox_dataset_path() inside the ClientApp and run it "
            "through syft_flwr.run(...) or a data owner's job (which sets DATA_DIR)"
        )
    if not path.exists():
        raise DatasetPathError(f"dataset path {path} does not exist")
    return path


def run_syft_flwr() -> bool:
    """Whether this code runs under syft_flwr, i.e. whether :func:`get_syftbox_dataset_path`
    has a data path to return.

    True inside a datasite's ClientApp served by syft_flwr: in a simulation thread
    (``syft_flwr.run`` / ``syft-flwr run``, through a context variable) or in a data owner's
    approved job (``DATA_DIR`` set by the job runner). False elsewhere, e.g. under plain
    ``flwr run`` or in a notebook, so an app can fall back to its own data loading::

        if run_syft_flwr():
            data_dir = get_syftbox_dataset_path()
        else:
            data_dir = Path("data/local")

    It only says a path was provided; :func:`get_syftbox_dataset_path` checks it exists.
    """
    return _dataset_path.get() is not None or bool(os.environ.get(DATA_DIR_ENV))


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 round"``, ``"2 rounds"``, ``"1 reply"``, ``"3 replies"`` (``many`` when not +s)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
