"""Fixtures of the security tests: a small network (see tests/rds/rds_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.rds.rds_helpers import Net, make_net


@pytest.fixture
def net(tmp_path: Path) -> Net:
    return make_net(tmp_path)
