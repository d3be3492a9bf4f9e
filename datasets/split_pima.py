"""Split the Pima Indians Diabetes data between two data owners and make their mock data.

Run ``python datasets/split_pima.py`` (from anywhere). It reads
``pima-indians-diabetes-database/raw/pima-indians-diabetes.csv`` and writes, next to it::

    README.md                        the dataset description shown to data scientists
    do1/README.md, do2/README.md     the same, with the counts of that data owner's part
    do1/private/{train,test}.csv     half of the rows each, 80/20 stratified on y
    do1/mock/{train,test}.csv        synthetic rows with the same schema (never real rows)
    do2/...                          likewise

The script is deterministic (fixed seeds) and idempotent: running it again rewrites nothing.
``--check`` only reports whether the files on disk are up to date (exit status 1 if not).

Mock rows are drawn per outcome class from per-column distributions fitted to that data
owner's private rows (normal, log-normal or negative binomial, see ``COLUMNS``), clipped to
the observed range, rounded like the original column, with the observed share of zero
"missing" measurements. Any drawn row equal to a row of the original data is drawn again.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DATASET_DIR = Path(__file__).resolve().parent / "pima-indians-diabetes-database"
RAW_CSV = Path("raw") / "pima-indians-diabetes.csv"
RAW_MD5 = "1c644ff1dd47bea0375d260747f2e40a"

LABEL = "y"
ORIGINAL_LABEL = "Outcome"
SEED = 42
OWNERS = ("do1", "do2")
TEST_FRACTION = 0.2
MOCK_ROWS = {"train": 80, "test": 20}  # per data owner


@dataclass(frozen=True)
class Column:
    """How a column looks and how its mock values are drawn."""

    description: str
    unit: str
    decimals: int  # how the original column is rounded
    distribution: str  # "normal", "lognormal" or "negbinomial"
    zero_is_missing: bool = False  # a 0 stands for a measurement that was not taken
    offset: float = 0.0  # lognormal: fitted to log(x - offset)


COLUMNS: dict[str, Column] = {
    "Pregnancies": Column("Number of times pregnant", "count", 0, "negbinomial"),
    "Glucose": Column(
        "Plasma glucose concentration 2 hours into an oral glucose tolerance test",
        "mg/dL",
        0,
        "normal",
        zero_is_missing=True,
    ),
    "BloodPressure": Column("Diastolic blood pressure", "mm Hg", 0, "normal", zero_is_missing=True),
    "SkinThickness": Column("Triceps skin fold thickness", "mm", 0, "normal", zero_is_missing=True),
    "Insulin": Column("2-hour serum insulin", "µU/ml", 0, "lognormal", zero_is_missing=True),
    "BMI": Column("Body mass index", "kg/m²", 1, "normal", zero_is_missing=True),
    "DiabetesPedigreeFunction": Column(
        "Diabetes pedigree function: a score of diabetes in the family history",
        "score",
        3,
        "lognormal",
    ),
    "Age": Column("Age", "years", 0, "lognormal", offset=20.0),
}
FEATURES = list(COLUMNS)


# -- reading --------------------------------------------------------------------------------
def load_original(dataset_dir: Path = DATASET_DIR) -> pd.DataFrame:
    """The raw CSV with ``Outcome`` renamed to the label column ``y`` (checksum verified)."""
    path = dataset_dir / RAW_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: copy the original pima-indians-diabetes.csv there (see "
            f"{dataset_dir / 'raw' / 'SOURCE.md'})"
        )
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    if digest != RAW_MD5:
        raise ValueError(
            f"{path} has md5 {digest}, expected {RAW_MD5}: it is not the original file. "
            "Restore it (the split and mock data are derived from the exact original)"
        )
    frame = pd.read_csv(path)
    expected = [*FEATURES, ORIGINAL_LABEL]
    if list(frame.columns) != expected:
        raise ValueError(f"{path} has columns {list(frame.columns)}, expected {expected}")
    return frame.rename(columns={ORIGINAL_LABEL: LABEL})


# -- the private split -------------------------------------------------------------------------
def stratified_split(
    frame: pd.DataFrame, test_fraction: float = TEST_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/test split keeping the label balance; rows keep their order (already shuffled)."""
    is_test = np.zeros(len(frame), dtype=bool)
    labels = frame[LABEL].to_numpy()
    for label in np.unique(labels):
        positions = np.flatnonzero(labels == label)
        n_test = int(round(len(positions) * test_fraction))
        is_test[positions[len(positions) - n_test :]] = True
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def split_owners(frame: pd.DataFrame, seed: int = SEED) -> dict[str, pd.DataFrame]:
    """Shuffle with a fixed seed and give each data owner half of the rows."""
    order = np.random.default_rng([seed, 0]).permutation(len(frame))
    shuffled = frame.iloc[order].reset_index(drop=True)
    parts = np.array_split(np.arange(len(shuffled)), len(OWNERS))
    return {
        owner: shuffled.iloc[rows].reset_index(drop=True)
        for owner, rows in zip(OWNERS, parts, strict=True)
    }


# -- mock data ----------------------------------------------------------------------------------
def _draw_column(
    rng: np.random.Generator, values: np.ndarray, column: Column, n: int
) -> np.ndarray:
    missing = (values == 0) if column.zero_is_missing else np.zeros(len(values), dtype=bool)
    observed = values[~missing].astype(float)
    if len(observed) == 0:
        return np.zeros(n)
    low, high = observed.min(), observed.max()
    spread = observed.std(ddof=1) if len(observed) > 1 else 0.0
    if column.distribution == "normal":
        drawn = rng.normal(observed.mean(), spread, n)
    elif column.distribution == "lognormal":
        logs = np.log(np.maximum(observed - column.offset, 1e-9))
        scale = logs.std(ddof=1) if len(logs) > 1 else 0.0
        drawn = column.offset + np.exp(rng.normal(logs.mean(), scale, n))
    elif column.distribution == "negbinomial":
        mean, var = observed.mean(), spread**2
        if mean <= 0:
            drawn = np.zeros(n)
        elif var > mean:  # overdispersed counts: a negative binomial with these moments
            drawn = rng.negative_binomial(mean**2 / (var - mean), mean / var, n).astype(float)
        else:
            drawn = rng.poisson(mean, n).astype(float)
    else:
        raise ValueError(f"unknown distribution {column.distribution!r}")
    drawn = np.clip(np.round(drawn, column.decimals), low, high)
    if missing.any():
        drawn[rng.random(n) < missing.mean()] = 0.0
    return drawn


def _draw_rows(
    rng: np.random.Generator, rows: pd.DataFrame, n: int, forbidden: set[tuple]
) -> pd.DataFrame:
    """``n`` synthetic rows fitted to ``rows`` (one class), none of them in ``forbidden``."""
    kept: list[pd.DataFrame] = []
    missing = n
    while missing > 0:
        drawn = pd.DataFrame(
            {
                name: _draw_column(rng, rows[name].to_numpy(), column, missing)
                for name, column in COLUMNS.items()
            }
        )
        drawn[LABEL] = rows[LABEL].iloc[0]
        drawn = _with_dtypes(drawn, rows)
        fresh = [_row_key(row) not in forbidden for row in drawn.itertuples(index=False)]
        kept.append(drawn[fresh])
        missing -= int(sum(fresh))
    return pd.concat(kept, ignore_index=True)


def _with_dtypes(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({name: like[name].dtype for name in frame.columns})


def _row_key(row: tuple) -> tuple:
    return tuple(round(float(v), 6) for v in row)


def make_mock(
    private: pd.DataFrame, rng: np.random.Generator, forbidden: set[tuple]
) -> dict[str, pd.DataFrame]:
    """Synthetic train/test rows of one data owner, with its class balance."""
    share = private[LABEL].value_counts(normalize=True).sort_index()
    mock = {}
    for split, total in MOCK_ROWS.items():
        counts = {label: int(round(total * p)) for label, p in share.items()}
        largest = max(counts, key=lambda label: counts[label])
        counts[largest] += total - sum(counts.values())
        parts = [
            _draw_rows(rng, private[private[LABEL] == label], count, forbidden)
            for label, count in counts.items()
        ]
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        mock[split] = _with_dtypes(frame, private)
    return mock


# -- READMEs ------------------------------------------------------------------------------------
def _column_table() -> str:
    lines = ["| column | meaning | unit | missing |", "|---|---|---|---|"]
    for name, column in COLUMNS.items():
        missing = "0 = not measured" if column.zero_is_missing else "—"
        lines.append(f"| `{name}` | {column.description} | {column.unit} | {missing} |")
    lines.append(
        f"| `{LABEL}` | Label: 1 = diabetes (tested positive within five years), 0 = not | "
        "0/1 | — |"
    )
    return "\n".join(lines)


_ABOUT = """\
Medical measurements of women of Pima Indian heritage, at least 21 years old, and whether they
developed diabetes (768 patients in all, split between two data owners). One row per patient,
nine columns, all numeric. Predict or describe `y` from the eight features.

{table}

Each file is a CSV with a header row. `train.csv` and `test.csv` have the same columns. Zeros in
Glucose, BloodPressure, SkinThickness, Insulin and BMI are missing measurements, not real
values: treat them as missing (or impute) before computing statistics of those columns.
"""

_CREDIT = """\
Source: the Pima Indians Diabetes Database of the National Institute of Diabetes and Digestive
and Kidney Diseases (NIDDK), donated to the UCI Machine Learning Repository (Smith et al., 1988:
*Using the ADAP learning algorithm to forecast the onset of diabetes mellitus*). See
`raw/SOURCE.md` in the repository for the exact copy used.
"""


def _counts(frame: pd.DataFrame) -> str:
    positives = int(frame[LABEL].sum())
    return f"{len(frame)} rows ({positives} with y = 1, {len(frame) - positives} with y = 0)"


def dataset_readme(owners: dict[str, dict[str, dict[str, pd.DataFrame]]]) -> str:
    """The description of the whole dataset (what a data owner publishes)."""
    layout = "\n".join(
        f"- `{owner}/`: private {_counts(pd.concat(parts['private'].values()))}, "
        f"mock {_counts(pd.concat(parts['mock'].values()))}"
        for owner, parts in owners.items()
    )
    return (
        "# Pima Indians Diabetes Database\n\n"
        + _ABOUT.format(table=_column_table())
        + "\n## Parts\n\n"
        "The rows are split between two data owners (half each, shuffled with a fixed seed), "
        "and each half 80/20 into `train.csv`/`test.csv`, stratified on `y`. The `private/` "
        "part stays with its data owner. The `mock/` part is public and synthetic: rows drawn "
        "per class from distributions fitted to that owner's private data, with the same "
        "columns, types and ranges; it is for writing and testing code, not for conclusions.\n\n"
        f"{layout}\n\nMade by `datasets/split_pima.py`; do not edit the CSVs by hand.\n\n"
        "## Credit\n\n" + _CREDIT
    )


def owner_readme(owner: str, parts: dict[str, dict[str, pd.DataFrame]]) -> str:
    """The description of one data owner's part."""
    lines = [
        f"# Pima Indians Diabetes Database — {owner}'s part\n",
        _ABOUT.format(table=_column_table()),
        "## This data owner's files\n",
    ]
    for kind in ("private", "mock"):
        for split, frame in parts[kind].items():
            lines.append(f"- `{kind}/{split}.csv`: {_counts(frame)}")
    lines.append(
        "\nThe mock rows are synthetic (drawn from distributions fitted to the private rows): "
        "same schema and ranges, no real patient.\n\n## Credit\n\n" + _CREDIT
    )
    return "\n".join(lines)


# -- everything -----------------------------------------------------------------------------
def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def build(dataset_dir: Path = DATASET_DIR, seed: int = SEED) -> dict[Path, bytes]:
    """Every derived file (relative path -> bytes), computed in memory."""
    original = load_original(dataset_dir)
    forbidden = {_row_key(row) for row in original.itertuples(index=False)}
    owners: dict[str, dict[str, dict[str, pd.DataFrame]]] = {}
    for index, (owner, rows) in enumerate(split_owners(original, seed).items(), start=1):
        train, test = stratified_split(rows)
        private = {"train": train, "test": test}
        mock = make_mock(rows, np.random.default_rng([seed, index]), forbidden)
        owners[owner] = {"private": private, "mock": mock}

    files: dict[Path, bytes] = {Path("README.md"): dataset_readme(owners).encode("utf-8")}
    for owner, parts in owners.items():
        files[Path(owner) / "README.md"] = owner_readme(owner, parts).encode("utf-8")
        for kind, splits in parts.items():
            for split, frame in splits.items():
                files[Path(owner) / kind / f"{split}.csv"] = _csv_bytes(frame)
    return files


def write(files: dict[Path, bytes], dataset_dir: Path = DATASET_DIR) -> list[Path]:
    """Write the files that differ from what is on disk; returns those written."""
    written = []
    for relative, content in files.items():
        path = dataset_dir / relative
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(content)
        temporary.replace(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether the files are up to date"
    )
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [
            p
            for p, content in files.items()
            if not (DATASET_DIR / p).is_file() or (DATASET_DIR / p).read_bytes() != content
        ]
        for path in stale:
            print(f"out of date: {DATASET_DIR / path}")
        if stale:
            print("run: python datasets/split_pima.py")
        return 1 if stale else 0
    written = write(files)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(files)} files in {DATASET_DIR}: {len(written)} written, rest unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
