"""A tiny numpy Flower app and a threaded federation over real files, for transport tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from syft_flwr.config import Identity
from syft_flwr.crypto import create_party
from syft_flwr.network import Network
from syft_flwr.transport import DatasiteGrid, DatasiteNode, NodeResult
from syft_flwr.utils import get_syftbox_dataset_path

AGGREGATOR = "ds@openmined.org"
APP = "tiny-app"


#: the two datasites' updates and example counts most transport tests federate over
DELTAS = [[np.full(3, 1.0)], [np.full(3, 2.0)]]
COUNTS = [1, 2]


def datasite(i: int) -> str:
    return f"do{i}@openmined.org"


def create_identities(network: Network, emails: Sequence[str]) -> dict[str, Identity]:
    """Every party's identity and keys (message files are authenticated, bodies
    encrypted)."""
    return {email: create_party(network, email) for email in emails}


def write_data(folder: Path, delta: Sequence[np.ndarray], num_examples: int) -> Path:
    """A datasite's private data: the update its ClientApp adds, and its example count."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "data.npz", *delta, n=np.array(num_examples))
    return folder


def load_data(folder: Path) -> tuple[list[np.ndarray], int]:
    with np.load(folder / "data.npz") as data:
        n = int(data["n"])
        delta = [data[f"arr_{i}"] for i in range(len(data.files) - 1)]
    return delta, n


def make_app(*, expect_config: dict | None = None) -> ClientApp:
    """train: returns the received arrays + the datasite's delta, weighted by its example
    count. evaluate: the mean of the received arrays as "loss". query: count and sum of the
    delta. Data is found through get_syftbox_dataset_path(), checked against the Context."""
    app = ClientApp()

    def data() -> tuple[list[np.ndarray], int]:
        folder = get_syftbox_dataset_path()
        return load_data(folder)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        assert Path(context.node_config["data-path"]) == get_syftbox_dataset_path()
        config = msg.content["config"]
        for key, value in (expect_config or {}).items():
            if config[key] != value:
                raise ValueError(f"config {key}={config[key]!r}, expected {value!r}")
        delta, n = data()
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        new = [a + d for a, d in zip(arrays, delta, strict=True)]
        context.state["calls"] = MetricRecord(
            {"n": int(context.state["calls"]["n"]) + 1 if "calls" in context.state else 1}
        )
        return Message(
            RecordDict(
                {
                    "arrays": ArrayRecord(new),
                    "metrics": MetricRecord(
                        {"num-examples": n, "calls": context.state["calls"]["n"]}
                    ),
                }
            ),
            reply_to=msg,
        )

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        _, n = data()
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        loss = float(np.mean(np.concatenate([a.ravel() for a in arrays])))
        return Message(
            RecordDict({"metrics": MetricRecord({"num-examples": n, "loss": loss})}),
            reply_to=msg,
        )

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        delta, n = data()
        total = float(sum(d.sum() for d in delta))
        return Message(
            RecordDict({"stats": MetricRecord({"count": n, "sum": total})}), reply_to=msg
        )

    return app


def query_message(grid: DatasiteGrid, email: str) -> Message:
    return Message(
        RecordDict({"q": ConfigRecord({"stat": "sum"})}), grid.node_id_of(email), "query"
    )


@dataclass
class Federation:
    network: Network
    grid: DatasiteGrid
    nodes: dict[str, DatasiteNode]
    results: dict[str, NodeResult] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    threads: dict[str, threading.Thread] = field(default_factory=dict)

    def start(self, email: str) -> None:
        node = self.nodes[email]

        def serve() -> None:
            try:
                self.results[email] = node.serve()
            except BaseException as exc:  # surfaced by stop_all
                self.errors[email] = exc

        thread = threading.Thread(target=serve, name=f"node-{email}", daemon=True)
        self.threads[email] = thread
        thread.start()

    def stop(self, email: str) -> NodeResult:
        self.nodes[email].stop()
        self.threads[email].join(timeout=20)
        assert not self.threads[email].is_alive(), f"{email}'s node did not stop"
        if email in self.errors:
            raise self.errors[email]
        return self.results[email]

    def stop_all(self) -> None:
        for email, thread in self.threads.items():
            if thread.is_alive():
                self.stop(email)
        if self.errors:
            raise next(iter(self.errors.values()))


@contextmanager
def federation(
    root: Path,
    deltas: Sequence[Sequence[np.ndarray]],
    counts: Sequence[int],
    *,
    app: ClientApp | None = None,
    apps: dict[int, ClientApp] | None = None,
    start: Sequence[int] | None = None,
    timeout: float = 30.0,
    node_kwargs: dict | None = None,
    grid_kwargs: dict | None = None,
) -> Iterator[Federation]:
    """A grid and one DatasiteNode thread per datasite on a fresh network under ``root``.
    ``start`` limits which nodes are started (indexes, 1-based)."""
    network = Network.at(root)
    emails = [datasite(i + 1) for i in range(len(deltas))]
    create_identities(network, [AGGREGATOR, *emails])
    nodes = {}
    for i, email in enumerate(emails, start=1):
        folder = write_data(root / "data" / email, deltas[i - 1], counts[i - 1])
        node_app = (apps or {}).get(i) or app or make_app()
        nodes[email] = DatasiteNode(
            network, APP, email, AGGREGATOR, node_app, data_path=folder, **(node_kwargs or {})
        )
    grid = DatasiteGrid(network, APP, AGGREGATOR, emails, timeout=timeout, **(grid_kwargs or {}))
    fed = Federation(network, grid, nodes)
    for i, email in enumerate(emails, start=1):
        if start is None or i in start:
            fed.start(email)
    try:
        yield fed
    finally:
        try:
            fed.stop_all()
        finally:
            grid.close()
