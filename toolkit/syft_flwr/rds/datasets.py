"""Datasets: a public part (metadata, README, mock files) and a private part that never leaves.

```
datasites/<owner>/public/datasets/<name>/   metadata.json, README.md, mock/
private/<owner>/datasets/<name>/            private.json (where the data is), data/ (a copy)
```
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.network.atomic import (
    TMP_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    is_temporary,
    read_json,
)
from syft_flwr.network.layout import Network, validate_name
from syft_flwr.network.safe_read import (
    UnsafeFileError,
    is_plain_dir,
    read_regular,
    read_text,
    regular_files,
)
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.audit import AuditLog
from syft_flwr.rds.client import RDSClient, owner_only
from syft_flwr.rds.errors import DatasetNotFoundError

SCHEMA_SAMPLE_ROWS = 1000


@dataclass(eq=False)
class Dataset:
    """A dataset published on ``owner``'s datasite, as seen from one session."""

    name: str
    owner: str
    summary: str
    created_at: str
    schema: dict[str, Any] | None
    mock_files: list[str]
    dataset_dir: Path
    _datasets: DatasetAPI = field(repr=False)

    @property
    def description(self) -> str:
        """The dataset's README text ('' if it has none)."""
        try:
            return read_text(self.dataset_dir / "README.md", "readme")
        except FileNotFoundError:
            return ""

    def get_mock_path(self) -> Path:
        """The folder of mock files: same schema as the private data, visible to everyone."""
        return self.dataset_dir / "mock"

    def get_private_path(self) -> Path:
        """The folder of private data; only the data owner's own session may ask."""
        datasets = self._datasets
        if not datasets.is_owner:
            raise PermissionError(
                f"the private data of dataset {self.name!r} stays with its owner {self.owner}; "
                f"you are {datasets.client.email}. Explore get_mock_path() instead, and "
                "submit a job (session.job.submit(...)) to compute on the private data once "
                "the owner approves it"
            )
        return private_data_dir(datasets.network, datasets.host, self.name)

    def __repr__(self) -> str:
        columns = ""
        if self.schema:
            # each column once, though several files (train.csv, test.csv) share it
            names = list(
                dict.fromkeys(c["name"] for f in self.schema.values() for c in f["columns"])
            )
            columns = f", columns={names}"
        return (
            f"Dataset(name={self.name!r}, owner={self.owner!r}, summary={self.summary!r}, "
            f"mock_files={self.mock_files}{columns})"
        )


def private_data_dir(network: Network, owner: str, name: str) -> Path:
    """Where the private data of ``owner``'s dataset ``name`` is (a copy, or the folder the
    owner referenced)."""
    record = network.private_dataset_dir(owner, name) / "private.json"
    if not record.exists():
        raise DatasetNotFoundError(
            f"no private data recorded for dataset {name!r} in {record.parent}; "
            "create the dataset again with session.dataset.create(...)"
        )
    path = Path(read_json(record)["path"])
    if not path.exists():
        raise FileNotFoundError(
            f"the private data of dataset {name!r} was at {path}, which no longer exists; "
            "recreate the dataset with overwrite=True"
        )
    return path


def _copy_into(src: Path, dest_dir: Path) -> None:
    """Copy a file or a folder's content into ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(
            src, dest_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".*")
        )
    else:
        shutil.copy2(src, dest_dir / src.name)


def mock_files_of(mock: Path) -> list[str]:
    """The files of a mock folder: regular files only (UnsafeFileError, a ValueError, for a
    symlink, FIFO or device anywhere in it: a link is never followed, so private rows cannot
    be published or read as mock data through one). Hidden names and ``__pycache__`` skipped."""
    return [rel for rel in regular_files(mock) if "__pycache__" not in rel.split("/")]


def _copy_regular_into(src: Path, dest_dir: Path) -> None:
    """Copy the mock file or folder ``src`` into ``dest_dir``, reading regular files only."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not is_plain_dir(src):
        atomic_write_bytes(dest_dir / src.name, read_regular(src, "mock"))
        return
    for rel in mock_files_of(src):
        atomic_write_bytes(dest_dir / rel, read_regular(src / rel, "mock"))


def _infer_type(values: list[str]) -> str:
    values = [v for v in values if v.strip() != ""]
    if not values:
        return "empty"
    for kind, cast in (("integer", int), ("float", float)):
        try:
            for v in values:
                cast(v)
            return kind
        except ValueError:
            continue
    return "string"


def csv_schema(folder: Path) -> dict[str, Any] | None:
    """``{relative_csv_path: {"columns": [{"name", "type"}], "sample_rows": n}}`` or None."""
    schema: dict[str, Any] = {}
    for path in sorted(folder.rglob("*.csv")):
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                continue
            rows = [row for _, row in zip(range(SCHEMA_SAMPLE_ROWS), reader, strict=False)]
        columns = [
            {"name": col, "type": _infer_type([r[i] for r in rows if i < len(r)])}
            for i, col in enumerate(header)
        ]
        schema[path.relative_to(folder).as_posix()] = {"columns": columns}
    return schema or None


def _csv_headers(folder: Path) -> dict[str, list[str]]:
    out = {}
    for path in folder.rglob("*.csv"):
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            out[path.relative_to(folder).as_posix()] = next(csv.reader(fh), [])
    return out


def _replace_dir(staging: Path, final: Path) -> None:
    """Move ``staging`` to ``final``, replacing what was there."""
    old = None
    if final.exists():
        old = final.parent / f"{TMP_PREFIX}old-{uuid.uuid4().hex}-{final.name}"
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class DatasetAPI:
    """``session.dataset``: create (owner only), get, get_all, delete (owner only).

    ``audit`` is the owner's audit log (None in a guest's session).
    """

    def __init__(self, client: RDSClient, host: str, audit: AuditLog | None = None):
        self.client = client
        self.host = host
        self.audit = audit

    @property
    def network(self) -> Network:
        return self.client.network

    @property
    def is_owner(self) -> bool:
        return self.client.owns(self.host)

    def _require_owner(self, action: str) -> None:
        if not self.is_owner:
            raise owner_only(self.host, self.client.email, action)

    @property
    def _datasets_dir(self) -> Path:
        return self.network.datasets_dir(self.host)

    def create(
        self,
        name: str,
        path: Path | str,
        mock_path: Path | str,
        summary: str = "",
        description_path: Path | str | None = None,
        *,
        overwrite: bool = False,
        copy_private: bool = True,
    ) -> Dataset:
        """Publish dataset ``name``: mock files and README go public, ``path`` stays private.

        The private data is copied into the owner's private folder, or with
        ``copy_private=False`` only its folder is recorded (it must then stay where it is).
        """
        self._require_owner("create datasets")
        validate_name(name, "dataset name")
        # the mock folder is not resolved: a symlink given (or found in it) is refused
        path, mock_path = Path(path).expanduser().resolve(), Path(mock_path).expanduser().absolute()
        if not path.exists():
            raise FileNotFoundError(f"private data {path} does not exist")
        if not mock_path.exists():
            raise FileNotFoundError(f"mock data {mock_path} does not exist")
        if mock_path.is_symlink():
            raise UnsafeFileError(mock_path, "the mock data is a symlink; give the real folder")
        if is_plain_dir(mock_path):
            mock_files_of(mock_path)  # refuses a symlink or special file before anything moves
        if path == mock_path.resolve():
            raise ValueError(
                "path and mock_path are the same: the mock part is published to everyone; "
                "give a separate folder of fake or sample rows with the same schema"
            )
        datasites = self.network.datasites_dir.resolve()
        if path.is_relative_to(datasites):
            raise ValueError(
                f"private data {path} is inside the shared datasites folder {datasites}, "
                "where a sync would publish it: keep private data outside the network"
            )
        if not copy_private and not path.is_dir():
            raise ValueError(
                "copy_private=False records a folder: pass the folder holding the private "
                "data, or let the data be copied (copy_private=True)"
            )
        description = None
        if description_path is not None:
            description = Path(description_path).expanduser()
            if not description.is_file():
                raise FileNotFoundError(f"description_path {description} is not a file")
        final = self.network.dataset_dir(self.host, name)
        if final.exists() and not overwrite:
            raise FileExistsError(
                f"dataset {name!r} already exists on {self.host}: pass overwrite=True to replace "
                "it, or choose another name"
            )
        self._check_same_columns(path, mock_path)

        # Private part first: a public dataset never points at missing private data.
        record_dir = self.network.private_dataset_dir(self.host, name)
        record_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = record_dir.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
        staging.mkdir()
        data_path = path
        if copy_private:
            _copy_into(path, staging / "data")
            data_path = record_dir / "data"
        atomic_write_json(
            staging / "private.json",
            {"name": name, "path": str(data_path), "copied": copy_private, "source": str(path)},
        )
        _replace_dir(staging, record_dir)

        staging = final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}"
        staging.mkdir(parents=True)
        _copy_regular_into(mock_path, staging / "mock")
        if description is not None:
            shutil.copyfile(description, staging / "README.md")
        mock_files = sorted(
            p.relative_to(staging / "mock").as_posix()
            for p in (staging / "mock").rglob("*")
            if p.is_file()
        )
        metadata = {
            "name": name,
            "summary": summary,
            "owner": self.host,
            "created_at": utc_now(),
            "mock_files": mock_files,
            "schema": csv_schema(staging / "mock"),
        }
        atomic_write_json(staging / "metadata.json", metadata)
        _replace_dir(staging, final)
        if self.audit is not None:
            self.audit.append(
                "dataset_create", dataset=name, overwrite=overwrite, copied=copy_private
            )
        logger.info(f"dataset {name!r} published on {self.host} (mock: {len(mock_files)} files)")
        return self.get(name)

    @staticmethod
    def _check_same_columns(path: Path, mock_path: Path) -> None:
        if not (path.is_dir() and mock_path.is_dir()):
            return
        private, mock = _csv_headers(path), _csv_headers(mock_path)
        for rel, columns in mock.items():
            if rel in private and private[rel] != columns:
                logger.warning(
                    f"mock {rel} has columns {columns} but the private {rel} has "
                    f"{private[rel]}: code tested on the mock data may fail on the private data"
                )

    def get(self, name: str) -> Dataset:
        """The dataset ``name`` of this session's datasite (DatasetNotFoundError lists the
        ones that exist)."""
        meta_path = self.network.dataset_dir(self.host, name) / "metadata.json"
        if not os.path.lexists(meta_path):
            known = ", ".join(d.name for d in self.get_all()) or "none"
            raise DatasetNotFoundError(f"no dataset {name!r} on {self.host} (available: {known})")
        return self._load(meta_path)

    def _load(self, meta_path: Path) -> Dataset:
        meta = json.loads(read_regular(meta_path, "metadata"))
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path} is not a JSON object")
        return Dataset(
            name=meta["name"],
            owner=meta.get("owner", self.host),
            summary=meta.get("summary", ""),
            created_at=meta.get("created_at", ""),
            schema=meta.get("schema"),
            mock_files=list(meta.get("mock_files", [])),
            dataset_dir=meta_path.parent,
            _datasets=self,
        )

    def get_all(self) -> list[Dataset]:
        """Every dataset published on this session's datasite, by name."""
        root = self._datasets_dir
        if not root.is_dir():
            return []
        out = []
        for d in sorted(root.iterdir()):
            meta = d / "metadata.json"
            if is_temporary(d.name) or not os.path.lexists(meta):
                continue
            try:
                out.append(self._load(meta))
            except (ValueError, KeyError, OSError) as exc:
                logger.warning(f"skipping dataset folder {d}: unreadable metadata ({exc})")
        return out

    def delete(self, name: str) -> None:
        """Remove the dataset's public part and its private record (owner only)."""
        self._require_owner("delete datasets")
        final = self.network.dataset_dir(self.host, name)
        if not final.exists():
            raise DatasetNotFoundError(f"no dataset {name!r} on {self.host}")
        shutil.rmtree(final)
        shutil.rmtree(self.network.private_dataset_dir(self.host, name), ignore_errors=True)
        if self.audit is not None:
            self.audit.append("dataset_delete", dataset=name)
