"""Constants and helpers the tests share (import as ``from tests.support import ...``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from loguru import logger

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
AGGREGATOR = "ds@openmined.org"
DATASITES = ["do1@openmined.org", "do2@openmined.org"]
# the Pima columns, written out here so tests never take them from the code they test
PIMA_FEATURES = [
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
]


def copy_app(source: Path, dest: Path) -> Path:
    """Copy a Flower app without generated files (main.py, outputs, logs, caches)."""
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns(
            "__pycache__", "figures", "weights", "simulation_logs", "runs", "main.py"
        ),
    )
    return dest


def missing_tool(path: Path) -> bool:
    """True when a system tool is absent and the test may skip; in CI (CI=true) never skip,
    so a missing install step turns red instead of silently skipping."""
    import os

    return not path.exists() and os.environ.get("CI", "").lower() != "true"


@contextlib.contextmanager
def captured_logs(level: str = "INFO") -> Iterator[list[str]]:
    """The loguru lines logged at ``level`` or above while the block runs."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level=level)
    try:
        yield lines
    finally:
        logger.remove(sink)
