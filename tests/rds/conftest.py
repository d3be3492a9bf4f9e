"""Fixtures of the RDS tests (helpers live in rds_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_flwr.rds import setup_rds_server
from tests.rds.rds_helpers import DATASET, DO, DS, Net, make_dataset_files


@pytest.fixture
def net(tmp_path: Path) -> Net:
    root = tmp_path / "net"
    do = setup_rds_server(email=DO, root_dir=root, key="local_syftbox_network")
    admin = do.init_session(host=DO)
    private_dir, mock_dir, readme = make_dataset_files(tmp_path / "dataset")
    admin.dataset.create(
        name=DATASET,
        path=private_dir,
        mock_path=mock_dir,
        summary="Diabetes diagnostics of Pima Indian women",
        description_path=readme,
    )
    ds = setup_rds_server(email=DS, root_dir=root, key="local_syftbox_network")
    guest = ds.init_session(host=DO)
    return Net(root, do, admin, ds, guest, private_dir, mock_dir)
