"""Test helpers for the Flower apps: data split helpers and loading an app's scripts.

The apps are driven through the package's :class:`~syft_flwr.transport.loopback.LoopbackGrid`,
which hands each Message to a ClientApp in this process as a datasite's node would.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tests.support import REPO

ORIGINAL_CSV = (
    REPO / "datasets" / "pima-indians-diabetes-database" / "raw" / "pima-indians-diabetes.csv"
)
DATASET_DIR = REPO / "datasets" / "pima-indians-diabetes-database"


# -- data -----------------------------------------------------------------------------------
def real_split_dirs(kind: str = "private") -> list[Path] | None:
    """The two data owners' ``<kind>`` folders of datasets/, if they exist yet."""
    dirs = [DATASET_DIR / f"do{i}" / kind for i in (1, 2)]
    if all((d / "train.csv").is_file() and (d / "test.csv").is_file() for d in dirs):
        return dirs
    return None


def make_split_dirs(root: Path, seed: int = 0, rows: int | None = None) -> list[Path]:
    """Two datasites' train/test CSVs (label ``y``) made from the original Pima file."""
    frame = pd.read_csv(ORIGINAL_CSV).rename(columns={"Outcome": "y"})
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if rows is not None:
        frame = frame.iloc[:rows]
    dirs = []
    half = len(frame) // 2
    for i, part in enumerate((frame.iloc[:half], frame.iloc[half:]), start=1):
        folder = root / f"do{i}"
        folder.mkdir(parents=True)
        cut = int(len(part) * 0.8)
        part.iloc[:cut].to_csv(folder / "train.csv", index=False)
        part.iloc[cut:].to_csv(folder / "test.csv", index=False)
        dirs.append(folder)
    return dirs


def data_dirs(root: Path) -> list[Path]:
    """The real private splits when datasets/ has them, else splits made under ``root``."""
    return real_split_dirs() or make_split_dirs(root)


def load_script(path: Path, package: str) -> Any:
    """Import the script at ``path``, which imports ``package`` from its project folder, then
    put ``sys.path`` and that package's ``sys.modules`` entries back as they were (so another
    copy of the project still loads its own code)."""

    def owned(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    saved_path = list(sys.path)
    saved = {name: mod for name, mod in sys.modules.items() if owned(name)}
    for name in saved:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
        return module
    finally:
        sys.modules.pop(f"_script_{path.stem}", None)
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if owned(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def copy_project(source: Path, dest: Path) -> Path:
    """Copy an app without its outputs, so weights/ of the copy belong to one test."""
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns(
            "__pycache__", "weights", "figures", "simulation_logs", "main.py"
        ),
    )
    return dest
