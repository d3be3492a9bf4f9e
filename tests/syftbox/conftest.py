"""The SyftBox tests need the SyftBox programs (``make syftbox-env``); without them they skip
and say why."""

from __future__ import annotations

import pytest

from syft_flwr.syftbox.env import unavailable_reason


def pytest_collection_modifyitems(config, items) -> None:
    reason = unavailable_reason()
    for item in items:
        if reason and "real_syftbox" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"SyftBox is not installed: {reason}"))


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "real_syftbox: runs a SyftBox server and clients")
