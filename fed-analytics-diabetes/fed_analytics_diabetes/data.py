"""Reading a datasite's CSV files with pandas.

Under syft_flwr the data folder is the toolkit's (``get_syftbox_dataset_path()``: mock data in a
simulation, private data in a data owner's job). Under plain Flower (``flwr run``) each
simulated node reads its partition of the mock data: partition ``partition-id`` of
``num-partitions`` from the node config, over the folder the run config's ``mock-data`` names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from flwr.common import log

from fed_analytics_diabetes.settings import DATA_FILES, FEATURES, LABEL
from syft_flwr.utils import get_syftbox_dataset_path, run_syft_flwr

COLUMNS = [*FEATURES, LABEL]


def read_csv(path: Path) -> pd.DataFrame:
    """The feature and label columns of one CSV file, as floats (NaN where missing).

    Raises ValueError naming the file and what is wrong: a missing column, a cell that is
    not a number.
    """
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path.name} is empty: no header row, no data") from None
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{path.name} lacks column(s) {missing}; expected {COLUMNS} (found "
            f"{list(frame.columns)})"
        )
    frame = frame[COLUMNS]
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna() & frame.notna()
    if bad.any().any():
        column = bad.any().idxmax()
        row = int(bad[column].to_numpy().argmax())
        raise ValueError(
            f"column {column!r} is not numeric: {str(frame[column].iloc[row])[:40]!r} in data "
            f"row {row + 1} of {path.name}"
        )
    return numbers.astype(float)


def load_data(data_dir: Path) -> pd.DataFrame:
    """``train.csv`` and ``test.csv`` of ``data_dir``, one after the other (at least one of
    the files must exist)."""
    present = [data_dir / name for name in DATA_FILES if (data_dir / name).is_file()]
    if not present:
        found = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
        raise FileNotFoundError(
            f"no {' or '.join(DATA_FILES)} in {data_dir} (found: {found or 'nothing'}): the "
            "dataset folder must hold the Pima diabetes CSVs with a 'y' label column"
        )
    for name in DATA_FILES:
        if data_dir / name not in present:
            log(logging.WARNING, "%s has no %s; using %s only", data_dir, name, present[0].name)
    return pd.concat([read_csv(path) for path in present], ignore_index=True)


def mock_partition(node_config: Mapping[str, Any], run_config: Mapping[str, Any]) -> pd.DataFrame:
    """Every ``num-partitions``-th row of the mock data, from row ``partition-id`` on: the
    mock folders under ``mock-data`` (``*/mock``, or the folder itself)."""
    root = Path(str(run_config.get("mock-data", ""))).expanduser()
    folders = sorted(root.glob("*/mock")) or [root]
    frame = pd.concat([load_data(folder) for folder in folders], ignore_index=True)
    partition, partitions = int(node_config["partition-id"]), int(node_config["num-partitions"])
    return frame.iloc[partition::partitions].reset_index(drop=True)


def load_node_data(node_config: Mapping[str, Any], run_config: Mapping[str, Any]) -> pd.DataFrame:
    """This node's data: the datasite's under syft_flwr, else (a node of Flower's simulation,
    which has a ``partition-id``) its partition of the mock data."""
    if run_syft_flwr() or "partition-id" not in node_config:
        return load_data(get_syftbox_dataset_path())
    return mock_partition(node_config, run_config)
