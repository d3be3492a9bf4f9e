"""fed-analytics-diabetes reads its CSVs with pandas: statistics, errors that say where, and
its partitions of the mock data under plain Flower."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.support import PIMA_FEATURES, REPO

APP = REPO / "fed-analytics-diabetes"
PACKAGE = "fed_analytics_diabetes"
EDGES = {"Glucose": [0.0, 100.0, 150.0, 200.0], "BMI": [0.0, 30.0, 70.0]}


@pytest.fixture
def app() -> Iterator[SimpleNamespace]:
    """The app's data and statistics modules, imported from the repository's copy."""
    saved_path = list(sys.path)
    saved = {n: m for n, m in sys.modules.items() if n == PACKAGE or n.startswith(PACKAGE + ".")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(APP))
    try:
        yield SimpleNamespace(
            data=importlib.import_module(f"{PACKAGE}.data"),
            statistics=importlib.import_module(f"{PACKAGE}.statistics"),
        )
    finally:
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        sys.modules.update(saved)


def _csv(path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False) -> Path:
    lines = [",".join(header), *(",".join(r) for r in rows)]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows_with_gaps() -> tuple[list[str], list[list[str]]]:
    """Pima-like rows in another column order, with an extra text column, missing cells of
    every spelling pandas knows, zeros, decimals and a blank line."""
    header = ["note", "y", *reversed(PIMA_FEATURES)]
    rng = np.random.default_rng(7)
    gaps = ["", "NA", "nan", "NaN", "null", "N/A", "None"]
    rows = []
    for i in range(60):
        values = [f"{rng.integers(0, 200)}" if i % 5 else "0" for _ in PIMA_FEATURES]
        values[i % len(values)] = gaps[i % len(gaps)]
        values[2] = f"{rng.uniform(15, 60):.1f}"  # a decimal column
        rows.append([f"patient {i}", str(i % 2), *values])
    rows.insert(30, [])  # a blank line
    return header, rows


def test_statistics_of_a_table_equal_pandas_on_the_same_file(app, tmp_path: Path) -> None:
    header, rows = _rows_with_gaps()
    path = _csv(tmp_path / "train.csv", header, rows, bom=True)
    stats = app.statistics.local_statistics(app.data.read_csv(path), EDGES)

    frame = pd.read_csv(path, encoding="utf-8-sig")
    assert frame[PIMA_FEATURES].isna().sum().sum() > 0  # the file does have gaps
    for o in (0, 1):
        part = frame[frame["y"] == o]
        assert stats.rows[o] == len(part)
        for feature in PIMA_FEATURES:
            column, totals = part[feature], stats.totals[feature][o]
            assert totals.count == int(column.count())
            assert totals.zeros == int((column == 0).sum())
            assert totals.sum == float(column.sum())  # the same additions in the same order
        for feature, edges in EDGES.items():
            values = part[feature].dropna().to_numpy(dtype=float)
            expected, _ = np.histogram(values, bins=edges)
            assert stats.histograms[feature][o].counts == expected.tolist()


def test_two_files_are_read_one_after_the_other(app, tmp_path: Path) -> None:
    header = [*PIMA_FEATURES, "y"]
    _csv(tmp_path / "train.csv", header, [["1"] * 8 + ["0"], ["2"] * 8 + ["1"]])
    _csv(tmp_path / "test.csv", list(reversed(header)), [["1"] + ["3"] * 8])
    frame = app.data.load_data(tmp_path)
    assert frame["Age"].tolist() == [1.0, 2.0, 3.0]
    assert frame["y"].tolist() == [0.0, 1.0, 1.0]
    assert len(frame) == 3


def test_plain_flower_nodes_read_disjoint_partitions_of_the_mock_data(app) -> None:
    """Under ``flwr run`` node ``partition-id`` of ``num-partitions`` reads every n-th row of
    the mock folders; the partitions together are the mock data."""
    root = REPO / "datasets" / "pima-indians-diabetes-database"
    whole = pd.concat(
        [app.data.load_data(root / f"do{i}" / "mock") for i in (1, 2)], ignore_index=True
    )
    run_config = {"mock-data": str(root)}
    parts = [
        app.data.load_node_data({"partition-id": p, "num-partitions": 3}, run_config)
        for p in range(3)
    ]
    assert [len(part) for part in parts] == [len(whole[p::3]) for p in range(3)]
    pooled = pd.concat(parts).sort_values(list(whole.columns), ignore_index=True)
    pd.testing.assert_frame_equal(pooled, whole.sort_values(list(whole.columns), ignore_index=True))


@pytest.mark.parametrize(
    ("cell", "why"),
    [("abc", "'abc' in data row 2"), ("True", "'True' in data row 2"), ("1_000", "'1_000' in")],
)
def test_a_cell_that_is_not_a_number_is_an_error_naming_where(
    app, tmp_path: Path, cell: str, why: str
) -> None:
    header = [*PIMA_FEATURES, "y"]
    path = _csv(tmp_path / "train.csv", header, [["1"] * 8 + ["0"], [cell] + ["1"] * 8])
    with pytest.raises(ValueError, match=f"column '{PIMA_FEATURES[0]}' is not numeric") as info:
        app.data.read_csv(path)
    assert why in str(info.value) and "train.csv" in str(info.value)


def test_a_missing_column_is_named(app, tmp_path: Path) -> None:
    path = _csv(tmp_path / "test.csv", PIMA_FEATURES, [["1"] * 8])
    with pytest.raises(ValueError, match=r"test.csv lacks column\(s\) \['y'\]"):
        app.data.read_csv(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="no header row"):
        app.data.read_csv(empty)


@pytest.mark.parametrize(("label", "found"), [("", "missing values"), ("2", r"\[2.0\]")])
def test_labels_other_than_0_and_1_are_refused(app, tmp_path: Path, label: str, found: str) -> None:
    header = [*PIMA_FEATURES, "y"]
    rows = [["1"] * len(PIMA_FEATURES) + ["0"], ["1"] * len(PIMA_FEATURES) + [label]]
    table = app.data.read_csv(_csv(tmp_path / "train.csv", header, rows))
    with pytest.raises(ValueError, match=f"must hold only \\[0, 1\\]; found {found}"):
        app.statistics.local_statistics(table, EDGES)
