"""Reading the datasite's CSV files into numeric columns.

The ClientApp needs a handful of numeric columns from one or two small CSV files, so it reads
them with the standard ``csv`` module into numpy arrays instead of loading pandas: on the
data owner's side that is one dependency less in the job, and pandas' import alone would
take a fifth of a one-round simulation. Cells are read the way ``pandas.read_csv`` reads
them: a number is a float, and the cells pandas treats as missing (empty, ``NA``, ``NaN``,
``null``...) become NaN. Anything else in a column that is needed is an error that names
the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: one column per name, all of the same length (NaN where a cell is missing)
Table = dict[str, np.ndarray]

#: the cells ``pandas.read_csv`` reads as missing by default (its ``na_values``)
MISSING_CELLS = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip


def read_columns(path: Path, names: Sequence[str]) -> Table:
    """The columns ``names`` of the CSV file ``path`` (header row first) as float arrays.

    Raises ValueError naming what is wrong: a missing column, a cell that is not a number.
    """
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in names if name not in header]
        if missing:
            raise ValueError(
                f"{path.name} lacks column(s) {missing}; expected {list(names)} (found "
                f"{header or 'no header row'})"
            )
        where = {name: header.index(name) for name in names}
        values: dict[str, list[float]] = {name: [] for name in names}
        for row in reader:
            if not row:
                continue  # a blank line, skipped as pandas does
            for name, index in where.items():
                values[name].append(_number(row, index, name, path, reader.line_num))
    return {name: np.asarray(column, dtype=float) for name, column in values.items()}


def concat(tables: Sequence[Table]) -> Table:
    """The rows of ``tables`` (same columns), one after the other."""
    return {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}


def rows(table: Table) -> int:
    return len(next(iter(table.values()))) if table else 0


def _number(row: list[str], index: int, name: str, path: Path, line: int) -> float:
    cell = row[index].strip() if index < len(row) else ""
    if cell in MISSING_CELLS:
        return math.nan
    try:
        if "_" in cell:  # float() reads "1_000"; pandas (and people) would not
            raise ValueError(cell)
        return float(cell)
    except ValueError:
        raise ValueError(
            f"column {name!r} is not numeric: {cell[:40]!r} on line {line} of {path.name}"
        ) from None
