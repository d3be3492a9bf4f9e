"""datasets/split_pima.py: reproducible files, an exact private partition, synthetic mock data."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tests.support import PIMA_FEATURES, REPO

SCRIPT = REPO / "datasets" / "split_pima.py"
DATASET = REPO / "datasets" / "pima-indians-diabetes-database"
RAW = DATASET / "raw" / "pima-indians-diabetes.csv"
OWNERS = ("do1", "do2")
SPLITS = ("train", "test")
FEATURES = PIMA_FEATURES
ZERO_IS_MISSING = {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}


def _generated_files(root: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "raw" not in p.relative_to(root).parts
    }


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=script.parent.parent,  # the script must not depend on the current directory
    )


def _copy_inputs(tmp_path: Path) -> Path:
    """A fresh tree with only the script and the raw data."""
    script = tmp_path / "datasets" / "split_pima.py"
    script.parent.mkdir(parents=True)
    shutil.copyfile(SCRIPT, script)
    shutil.copytree(DATASET / "raw", tmp_path / "datasets" / DATASET.name / "raw")
    return script


def _read(owner: str, kind: str, split: str) -> pd.DataFrame:
    return pd.read_csv(DATASET / owner / kind / f"{split}.csv")


def _both(owner: str, kind: str) -> pd.DataFrame:
    return pd.concat([_read(owner, kind, s) for s in SPLITS], ignore_index=True)


def _original() -> pd.DataFrame:
    return pd.read_csv(RAW).rename(columns={"Outcome": "y"})


def _sorted_rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted(tuple(row) for row in frame.itertuples(index=False))


def _decimals(value: float) -> int:
    return max(0, -Decimal(repr(float(value))).normalize().as_tuple().exponent)


def test_the_script_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    script = _copy_inputs(tmp_path)
    first = _run(script)
    assert first.returncode == 0, first.stderr
    made = _generated_files(tmp_path / "datasets" / DATASET.name)
    committed = _generated_files(DATASET)
    assert len(made) == 11
    assert made.keys() == committed.keys()
    different = [str(p) for p in made if made[p] != committed[p]]
    assert different == []

    again = _run(script)  # idempotent: nothing rewritten, same bytes
    assert again.returncode == 0, again.stderr
    assert "0 written" in again.stdout
    assert _generated_files(tmp_path / "datasets" / DATASET.name) == made
    assert _run(script, "--check").returncode == 0


def test_check_reports_a_stale_file_and_a_run_repairs_it(tmp_path: Path) -> None:
    script = _copy_inputs(tmp_path)
    assert _run(script).returncode == 0
    mock = tmp_path / "datasets" / DATASET.name / "do2" / "mock" / "test.csv"
    good = mock.read_bytes()
    mock.write_bytes(good.replace(b"\n", b"\r\n"))
    check = _run(script, "--check")
    assert check.returncode == 1
    assert "do2/mock/test.csv" in check.stdout
    assert _run(script).returncode == 0
    assert mock.read_bytes() == good


def test_a_modified_raw_file_is_refused(tmp_path: Path) -> None:
    script = _copy_inputs(tmp_path)
    raw = tmp_path / "datasets" / DATASET.name / "raw" / RAW.name
    raw.write_text(raw.read_text().replace("6,148,72,35,0,33.6", "6,149,72,35,0,33.6", 1))
    result = _run(script)
    assert result.returncode != 0
    assert "not the original file" in result.stderr
    assert not (tmp_path / "datasets" / DATASET.name / "do1").exists()


def test_the_raw_copy_is_the_original_with_its_credit() -> None:
    assert hashlib.md5(RAW.read_bytes()).hexdigest() == "1c644ff1dd47bea0375d260747f2e40a"
    source = (DATASET / "raw" / "SOURCE.md").read_text()
    assert "NIDDK" in source and "UCI Machine Learning Repository" in source
    assert len(_original()) == 768


def test_private_parts_partition_the_original_rows_exactly() -> None:
    original = _original()
    parts = {owner: _both(owner, "private") for owner in OWNERS}
    for frame in parts.values():
        assert list(frame.columns) == [*FEATURES, "y"]
        assert "Outcome" not in frame.columns
        assert len(frame) == len(original) // 2
    union = pd.concat(parts.values(), ignore_index=True)
    assert _sorted_rows(union) == _sorted_rows(original)  # no row lost, none duplicated
    assert not set(_sorted_rows(parts["do1"])) & set(_sorted_rows(parts["do2"]))


@pytest.mark.parametrize("owner", OWNERS)
def test_train_test_split_is_80_20_and_stratified(owner: str) -> None:
    train, test = _read(owner, "private", "train"), _read(owner, "private", "test")
    both = pd.concat([train, test])
    for label in (0, 1):
        n = int((both["y"] == label).sum())
        assert int((test["y"] == label).sum()) == round(n * 0.2)
    assert set(_sorted_rows(train)).isdisjoint(_sorted_rows(test))


@pytest.mark.parametrize("owner", OWNERS)
def test_mock_data_is_synthetic_with_the_private_schema_and_ranges(owner: str) -> None:
    private = _both(owner, "private")
    real_rows = set(_sorted_rows(_original()))
    mocks = {split: _read(owner, "mock", split) for split in SPLITS}
    assert (len(mocks["train"]), len(mocks["test"])) == (80, 20)
    mock = pd.concat(mocks.values(), ignore_index=True)

    for frame in mocks.values():
        assert list(frame.columns) == list(private.columns)
        assert frame.dtypes.to_dict() == private.dtypes.to_dict()
    assert not set(_sorted_rows(mock)) & real_rows  # never a copied row
    assert set(mock["y"]) == {0, 1}
    assert abs(mock["y"].mean() - private["y"].mean()) < 0.02  # the owner's class balance

    for column in FEATURES:
        low, high = private[column].min(), private[column].max()
        assert mock[column].between(low, high).all(), column
        places = max(_decimals(v) for v in private[column])
        assert max(_decimals(v) for v in mock[column]) <= places, column
        if column in ZERO_IS_MISSING and (private[column] == 0).mean() > 0.2:
            share = (mock[column] == 0).mean()
            assert 0.1 < share < 0.7, f"{column}: {share:.0%} zeros in the mock data"
        if column not in ZERO_IS_MISSING | {"Pregnancies"}:
            assert (mock[column] > 0).all(), column
    # fitted per class: the diabetics of the mock data have higher glucose too
    assert mock[mock["y"] == 1]["Glucose"].median() > mock[mock["y"] == 0]["Glucose"].median()


@pytest.mark.parametrize("folder", ["", "do1", "do2"])
def test_each_dataset_folder_describes_its_columns(folder: str) -> None:
    readme = (DATASET / folder / "README.md").read_text()
    for column in [*FEATURES, "y"]:
        assert f"`{column}`" in readme
    assert "NIDDK" in readme
