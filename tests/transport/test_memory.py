"""Large messages do not pile up in memory, even when flwr's record views make cycles."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

import syft_flwr.transport.grid as grid_module
import syft_flwr.transport.node as node_module
from syft_flwr import collector
from tests.transport.helpers import datasite, federation

BIG = 3 * 2**20  # float64s: 24 MB


@pytest.fixture
def only_the_transport_collects(monkeypatch) -> Iterator[None]:
    """Python's automatic collection off, the transport's thresholds low."""
    # below one 24 MB request: a node collects after each one once its inbox is quiet (with a
    # higher threshold, whether the last request is collected depends on the timing)
    monkeypatch.setattr(node_module, "COLLECT_AFTER_BYTES", 16 * 2**20)
    monkeypatch.setattr(grid_module, "COLLECT_AFTER_BYTES", 32 * 2**20)
    gc.collect()
    with collector.paused():
        yield


def test_a_node_frees_large_requests_the_app_tied_in_cycles(
    tmp_path: Path, only_the_transport_collects
) -> None:
    seen: list[weakref.ref] = []
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        records = msg.content.array_records  # a flwr view that references itself
        seen.append(weakref.ref(records["arrays"]["0"]))
        return Message(RecordDict({"m": MetricRecord({"n": len(records)})}), reply_to=msg)

    big = RecordDict({"arrays": ArrayRecord([np.zeros(BIG)])})
    with federation(tmp_path, [[np.zeros(1)]], [1], app=app) as fed:
        grid = fed.grid
        for _ in range(3):
            msg = Message(big, grid.node_id_of(datasite(1)), "query")
            replies = list(grid.send_and_receive([msg]))
            assert len(replies) == 1 and not replies[0].has_error()
        for _ in range(250):  # the node collects once its inbox is quiet
            if all(ref() is None for ref in seen):
                break
            time.sleep(0.02)
        fed.stop(datasite(1))
    assert len(seen) == 3
    assert all(ref() is None for ref in seen), "the requests' arrays are still alive"


def test_a_grid_frees_large_replies_a_strategy_tied_in_cycles(
    tmp_path: Path, only_the_transport_collects
) -> None:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"arrays": ArrayRecord([np.ones(BIG)])}), reply_to=msg)

    with federation(tmp_path, [[np.zeros(1)]], [1], app=app) as fed:
        grid = fed.grid
        seen = []
        for _ in range(3):
            msg = Message(RecordDict(), grid.node_id_of(datasite(1)), "train")
            (reply,) = grid.send_and_receive([msg])
            records = reply.content.array_records  # what flwr's strategies do with replies
            seen.append(weakref.ref(records["arrays"]["0"]))
            del reply, records
        alive_before_last_exchange = [ref() is not None for ref in seen]
    assert alive_before_last_exchange[-1]  # the cycle really holds the reply
    assert all(ref() is None for ref in seen[:-1]), "earlier replies are still alive"
