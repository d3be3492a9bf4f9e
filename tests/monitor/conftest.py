"""Fixtures of the monitor tests: a network in tmp_path and a live producer that cleans up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syft_flwr.crypto import ensure_keys
from syft_flwr.network.layout import Network
from tests.monitor.producer import LiveProducer
from tests.support import DATASITES


@pytest.fixture
def network(tmp_path: Path) -> Network:
    """A network where the two datasites have keys (a heartbeat is signed by its party)."""
    net = Network.at(tmp_path, "net")
    net.datasites_dir.mkdir(parents=True)
    for email in DATASITES:
        ensure_keys(net, email, durable=False)
    return net


@pytest.fixture
def producer(network: Network, tmp_path: Path) -> Iterator[callable]:
    """``producer(**kwargs)`` builds a LiveProducer; every one is stopped after the test."""
    made: list[LiveProducer] = []

    def make(**kwargs) -> LiveProducer:
        kwargs.setdefault("project_dir", tmp_path / "project")
        p = LiveProducer(network, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()
