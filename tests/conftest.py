"""Shared fixtures: copies of the test apps in parallel-safe temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from loguru import logger

import syft_flwr  # noqa: F401 - imported first: its import disables its records
from tests.support import FIXTURES, copy_app

# The suite is the application: it reads the toolkit's records (a library's are off by default).
logger.enable("syft_flwr")


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    """A fresh, un-bootstrapped copy of the tiny numpy Flower app."""
    return copy_app(FIXTURES / "tiny_app", tmp_path / "tiny_app")


@pytest.fixture
def tiny_data(tmp_path: Path) -> list[Path]:
    """values.txt folders for two datasites."""
    folders = []
    for i, values in enumerate([[1.0, 2.0, 3.0], [10.0, 20.0]], start=1):
        folder = tmp_path / f"data{i}"
        folder.mkdir()
        (folder / "values.txt").write_text("\n".join(map(str, values)))
        folders.append(folder)
    return folders
