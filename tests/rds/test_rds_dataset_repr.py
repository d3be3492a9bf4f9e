"""A Dataset's repr names each column once, however many files share it."""

from __future__ import annotations

from pathlib import Path

from syft_flwr.rds.datasets import Dataset, csv_schema


def test_repr_lists_each_column_once(tmp_path: Path) -> None:
    for name in ("train.csv", "test.csv"):
        (tmp_path / name).write_text("Glucose,BMI,y\n148,33.6,1\n")
    (tmp_path / "extra.csv").write_text("Glucose,note\n1,x\n")
    schema = csv_schema(tmp_path)
    assert schema is not None and len(schema) == 3
    dataset = Dataset(
        name="pima",
        owner="do1@openmined.org",
        summary="s",
        created_at="now",
        schema=schema,
        mock_files=sorted(schema),
        dataset_dir=tmp_path,
        _datasets=None,  # type: ignore[arg-type]
    )
    text = repr(dataset)
    assert "columns=['Glucose', 'note', 'BMI', 'y']" in text
    assert text.count("'Glucose'") == 1
