"""The sandbox tests run real bubblewrap; without it they are skipped with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_flwr.sandbox import BubblewrapMissingError, bwrap_path
from tests.rds.rds_helpers import Net, make_net


def _bwrap_missing() -> str | None:
    try:
        bwrap_path()
    except BubblewrapMissingError as exc:
        return str(exc)
    return None


MISSING = _bwrap_missing()
needs_bwrap = pytest.mark.skipif(
    MISSING is not None, reason=f"no working bubblewrap here ({MISSING}); CI installs it"
)


@pytest.fixture
def net(tmp_path: Path) -> Net:
    return make_net(tmp_path)
