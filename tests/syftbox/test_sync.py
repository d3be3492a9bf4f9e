"""Flower messages between parties that each have their own SyftBox client and data folder,
through a real SyftBox server on loopback: rounds, a data owner's client restarted mid-run,
the data scientist's client offline while the data owners answer."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from tests.syftbox.helpers import DOS, synced_federation, wait_until
from tests.transport.helpers import AGGREGATOR, APP

pytestmark = [pytest.mark.real_syftbox, pytest.mark.xdist_group("syftbox")]


def _sums(replies) -> dict[int, float]:
    assert all(not r.has_error() for r in replies), [r.error for r in replies if r.has_error()]
    return {int(r.metadata.src_node_id): r.content["stats"]["sum"] for r in replies}


def _expected(fed) -> dict[int, float]:
    return {fed.grid.node_id_of(DOS[0]): 30.0, fed.grid.node_id_of(DOS[1]): 60.0}


def test_rounds_through_the_sync(tmp_path: Path) -> None:
    with synced_federation(tmp_path) as fed:
        assert _sums(fed.query()) == _expected(fed)
        arrays = [np.zeros(10)] * 3
        replies = fed.train(arrays)
        assert sorted(float(r.content["arrays"].to_numpy_ndarrays()[0][0]) for r in replies) == [
            1.0,
            2.0,
        ]
        # nothing left behind: the grid and the nodes deleted what they read, and so did
        # the sync on the other side
        for email in DOS:
            inbox = fed.networks[email].flwr_inbox(email, APP)
            wait_until(lambda i=inbox: not list(i.glob("*.msg")), f"{email}'s inbox to empty")


def _in_background(call):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.__setitem__("replies", call()), daemon=True)
    thread.start()
    return thread, out


def test_a_data_owners_client_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    with synced_federation(tmp_path) as fed:
        assert _sums(fed.query()) == _expected(fed)
        fed.box.stop_client(DOS[0])  # killed between rounds: the next request waits on the server
        thread, out = _in_background(fed.query)
        snapshot = fed.box.snapshot_dir / DOS[0] / "app_data" / "flwr" / APP / "inbox"
        wait_until(lambda: any(snapshot.glob("*.msg")), "the request to reach the server")
        assert thread.is_alive(), "the round must wait for the data owner that is offline"
        fed.box.start_client(DOS[0])
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert _sums(out["replies"]) == _expected(fed)


def test_the_data_scientists_client_offline_while_the_data_owners_answer(
    tmp_path: Path,
) -> None:
    with synced_federation(tmp_path) as fed:
        assert _sums(fed.query()) == _expected(fed)
        thread, out = _in_background(fed.query)
        server = fed.box.snapshot_dir
        requests = [server / e / "app_data" / "flwr" / APP / "inbox" for e in DOS]
        wait_until(lambda: all(any(r.glob("*.msg")) for r in requests), "both requests")
        fed.box.stop_client(AGGREGATOR)
        replies = server / AGGREGATOR / "app_data" / "flwr" / APP / "inbox"
        wait_until(lambda: len(list(replies.glob("*.msg"))) == 2, "both replies on the server")
        ds_inbox = fed.networks[AGGREGATOR].flwr_inbox(AGGREGATOR, APP)
        assert not list(ds_inbox.glob("*.msg")), "the DS is offline: nothing arrives"
        assert thread.is_alive()
        fed.box.start_client(AGGREGATOR)  # back: it catches up
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert _sums(out["replies"]) == _expected(fed)
