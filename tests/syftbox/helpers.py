"""A grid and datasite nodes over a real SyftBox server on loopback: each party its own
client, data folder and network root (for the tests and benchmarks/syftbox.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp

from syft_flwr.crypto import create_party
from syft_flwr.network import Network
from syft_flwr.syftbox.cluster import LocalSyftBox
from syft_flwr.syftbox.permissions import grant_inbox, granted, write_datasite_permissions
from syft_flwr.transport import DatasiteGrid, DatasiteNode, NodeResult
from tests.transport.helpers import AGGREGATOR, APP, datasite, make_app, write_data

DOS = (datasite(1), datasite(2))


def wait_until(predicate, what: str, timeout: float = 30.0, every: float = 0.05) -> float:
    """Seconds until ``predicate()`` is true; AssertionError after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


@dataclass
class SyncedFederation:
    box: LocalSyftBox
    networks: dict[str, Network]
    grid: DatasiteGrid
    root: Path
    nodes: dict[str, DatasiteNode] = field(default_factory=dict)
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    results: dict[str, NodeResult] = field(default_factory=dict)
    node_kwargs: dict = field(default_factory=dict)
    app_factory: Callable[[], ClientApp] = make_app

    def start(self, email: str) -> None:
        node = DatasiteNode(
            self.networks[email],
            APP,
            email,
            AGGREGATOR,
            self.app_factory(),
            data_path=self.root / "data" / email,
            **self.node_kwargs,
        )
        self.nodes[email] = node
        thread = threading.Thread(
            target=lambda: self.results.__setitem__(email, node.serve()), daemon=True
        )
        self.threads[email] = thread
        thread.start()

    def stop_all(self) -> None:
        for email, node in self.nodes.items():
            node.stop()
            self.threads[email].join(timeout=20)

    def query(self) -> list[Message]:
        messages = [
            Message(
                RecordDict({"q": ConfigRecord({"stat": "sum"})}), self.grid.node_id_of(e), "query"
            )
            for e in DOS
        ]
        return list(self.grid.send_and_receive(messages))

    def train(self, arrays: list[np.ndarray]) -> list[Message]:
        messages = [
            Message(
                RecordDict({"arrays": ArrayRecord(arrays), "config": ConfigRecord({})}),
                self.grid.node_id_of(e),
                "train",
            )
            for e in DOS
        ]
        return list(self.grid.send_and_receive(messages))


@contextmanager
def synced_federation(
    root: Path,
    *,
    timeout: float = 60.0,
    start: bool = True,
    node_kwargs: dict | None = None,
    app_factory: Callable[[], ClientApp] = make_app,
) -> Iterator[SyncedFederation]:
    """ds (aggregator) and do1, do2 (datasites with deltas 1.0 and 2.0 over 3 arrays of 10)."""
    with LocalSyftBox(root / "syftbox") as box:
        networks = {}
        for email, name in ((AGGREGATOR, "ds"), (DOS[0], "do1"), (DOS[1], "do2")):
            client = box.add_client(email, name)
            network = client.workspace.network
            create_party(network, email)
            write_datasite_permissions(network, email)
            networks[email] = network
        grant_inbox(networks[AGGREGATOR], AGGREGATOR, APP, DOS)
        for i, email in enumerate(DOS, start=1):
            grant_inbox(networks[email], email, APP, [AGGREGATOR])
            write_data(root / "data" / email, [np.full(10, float(i))] * 3, 10 * i)
        for email, network in networks.items():  # every party sees every key, every grant
            for other in networks:
                wait_until(network.public_keys_path(other).is_file, f"{other}'s keys at {email}")
        ds_net = networks[AGGREGATOR]
        for email in DOS:
            wait_until(lambda e=email: granted(ds_net, e, APP, AGGREGATOR), f"{email}'s grant")
            wait_until(
                lambda e=email: granted(networks[e], AGGREGATOR, APP, e), f"grant to {email}"
            )
        grid = DatasiteGrid(ds_net, APP, AGGREGATOR, list(DOS), timeout=timeout)
        fed = SyncedFederation(
            box, networks, grid, root, node_kwargs=node_kwargs or {}, app_factory=app_factory
        )
        try:
            if start:
                for email in DOS:
                    fed.start(email)
            yield fed
        finally:
            try:
                fed.stop_all()
            finally:
                grid.close()
