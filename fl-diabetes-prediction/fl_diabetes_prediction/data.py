"""Reading a datasite's split of the Pima Indians Diabetes data.

Each datasite's data folder holds ``train.csv`` and ``test.csv`` with the eight clinical
features and the label ``y`` (1 = diabetes). In Glucose, BloodPressure, SkinThickness, Insulin
and BMI a zero is not a measurement but a missing one (nobody lives with a glucose, a blood
pressure or a BMI of 0; the data set's README marks all five "0 = not measured"), so it is read
as NaN; empty cells are missing too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from syft_flwr.utils import get_syftbox_dataset_path, run_syft_flwr

FEATURES: tuple[str, ...] = (
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
)
ZERO_MEANS_MISSING: tuple[str, ...] = (
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
)
LABEL = "y"
LEGACY_LABEL = "Outcome"  # the column name in the original Kaggle file
SPLITS = ("train", "test")


def split_path(folder: Path | str, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return Path(folder) / f"{split}.csv"


def frame_to_arrays(frame: pd.DataFrame, source: str = "the data") -> tuple[np.ndarray, np.ndarray]:
    """Features (float, NaN where missing) and labels (0.0/1.0) of a data frame."""
    absent = [c for c in FEATURES if c not in frame.columns]
    label = LABEL if LABEL in frame.columns else LEGACY_LABEL
    if absent or label not in frame.columns:
        wanted = ", ".join(absent + ([] if label in frame.columns else [LABEL]))
        raise ValueError(
            f"{source} lacks the column(s) {wanted}; it needs {', '.join(FEATURES)} and the "
            f"label {LABEL!r} (found: {', '.join(map(str, frame.columns))})"
        )
    features = frame.loc[:, list(FEATURES)].apply(pd.to_numeric, errors="coerce")
    for column in ZERO_MEANS_MISSING:
        features[column] = features[column].mask(features[column] == 0)
    labels = pd.to_numeric(frame[label], errors="coerce").to_numpy(dtype=float)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{source}: the label {label!r} must be 0 or 1 in every row")
    return features.to_numpy(dtype=float), labels


def read_split(folder: Path | str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` of ``<folder>/<split>.csv``."""
    path = split_path(folder, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: each datasite's data folder needs train.csv and test.csv"
        )
    features, labels = frame_to_arrays(pd.read_csv(path), source=str(path))
    if len(labels) == 0:
        raise ValueError(f"{path} has no rows")
    return features, labels


def read_node_split(
    node_config: Mapping[str, Any], run_config: Mapping[str, Any], split: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` of this node's ``split``: the datasite's own data under
    syft_flwr; under plain Flower (a node with a ``partition-id``) every
    ``num-partitions``-th row, from row ``partition-id`` on, of the mock folders under the run
    config's ``mock-data`` (``*/mock``, or the folder itself)."""
    if run_syft_flwr() or "partition-id" not in node_config:
        return read_split(get_syftbox_dataset_path(), split)
    root = Path(str(run_config.get("mock-data", ""))).expanduser()
    folders = sorted(root.glob("*/mock")) or [root]
    frame = pd.concat([pd.read_csv(split_path(f, split)) for f in folders], ignore_index=True)
    part = frame.iloc[int(node_config["partition-id"]) :: int(node_config["num-partitions"])]
    return frame_to_arrays(part, source=f"partition {node_config['partition-id']} of {root}")
