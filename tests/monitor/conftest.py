"""Fixtures of the monitor tests: a network in tmp_path and a live producer that cleans up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syft_flwr.network.layout import Network
from tests.monitor.producer import LiveProducer


@pytest.fixture
def network(tmp_path: Path) -> Network:
    net = Network.at(tmp_path, "net")
    net.datasites_dir.mkdir(parents=True)
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
