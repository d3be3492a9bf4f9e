"""Failures on the wire: app errors, silent datasites, bad files, restarts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg

from syft_flwr.crypto import MessageKeys, create_party
from syft_flwr.network import atomic_write_bytes
from syft_flwr.transport import DatasiteGrid, DatasiteNode, codec, flwr_compat
from tests.faults.helpers import wait_for
from tests.support import captured_logs
from tests.transport.helpers import AGGREGATOR, APP, datasite, federation, make_app, query_message

DELTAS = [[np.full(3, 1.0)], [np.full(3, 2.0)], [np.full(3, 3.0)]]
COUNTS = [1, 2, 3]


def _raising_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        raise ZeroDivisionError("the data owner's column is empty")

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        raise KeyError("no such column: glucose")

    return app


@pytest.fixture
def warnings_log():
    with captured_logs("WARNING") as lines:
        yield lines


def test_app_exception_is_an_error_reply_not_a_timeout(tmp_path: Path, warnings_log) -> None:
    with federation(tmp_path, DELTAS, COUNTS, apps={2: _raising_app()}, timeout=60) as fed:
        grid = fed.grid
        replies = list(grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2, 3)]))
        assert len(replies) == 3
        failed = [r for r in replies if r.has_error()]
        assert len(failed) == 1
        assert failed[0].metadata.src_node_id == grid.node_id_of(datasite(2))
        assert failed[0].error.code == flwr_compat.CLIENT_APP_RAISED_EXCEPTION
        assert "KeyError" in failed[0].error.reason and "glucose" in failed[0].error.reason

        exchange = grid.report.rounds[-1]
        assert exchange.missing == []  # answered at once, not left to the timeout
        assert sorted(exchange.answered) == [datasite(1), datasite(3)]
        err = exchange.errors[datasite(2)]
        assert err.exception_type == "KeyError" and "glucose" in err.message
        assert not grid.report.ok and grid.report.failed_datasites == [datasite(2)]

        # a strategy counts the error reply as a failure and averages the others
        result = FedAvg(min_available_nodes=3, fraction_evaluate=0.0).start(
            grid, ArrayRecord([np.zeros(3)]), num_rounds=1
        )
        expected = (1 * 1.0 + 3 * 3.0) / 4
        np.testing.assert_allclose(result.arrays.to_numpy_ndarrays()[0], np.full(3, expected))
        node2 = fed.stop(datasite(2))
    # the failing node kept serving and says what failed
    assert node2.reason == "stopped"
    assert [e.exception_type for e in node2.app_errors] == ["KeyError", "ZeroDivisionError"]
    assert any(datasite(2) in line and "ZeroDivisionError" in line for line in warnings_log)


def test_silent_datasite_is_reported_at_the_timeout(tmp_path: Path, warnings_log) -> None:
    with federation(tmp_path, DELTAS[:2], COUNTS[:2], start=[1], timeout=1.5) as fed:
        grid = fed.grid
        replies = list(grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2)]))
        assert [r.metadata.src_node_id for r in replies] == [grid.node_id_of(datasite(1))]
        exchange = grid.report.rounds[-1]
        assert exchange.missing == [datasite(2)]
        assert exchange.answered == [datasite(1)]
        assert not grid.report.ok
        assert any("no reply" in line and datasite(2) in line for line in warnings_log)
        # the unanswered request was withdrawn: a node starting later finds nothing stale
        assert not list(fed.network.flwr_inbox(datasite(2), APP).glob("*.msg"))
        # a caller's shorter timeout wins over the grid's
        assert grid.send_and_receive([query_message(grid, datasite(2))], timeout=0.1) == []


def _push(grid: DatasiteGrid, email: str, size: int = 8) -> Path:
    """Drop a valid request (an ArrayRecord of ``size`` float64s) and return its file."""
    msg = Message(
        RecordDict({"arrays": ArrayRecord([np.arange(size, dtype=float)])}),
        grid.node_id_of(email),
        "query",
    )
    (message_id,) = grid.push_messages([msg])
    return grid.network.flwr_inbox(email, APP) / f"{message_id}.msg"


def test_bad_files_are_quarantined_and_the_node_keeps_serving(tmp_path: Path) -> None:
    node_kwargs = {"max_message_bytes": 64 * 1024}
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[], node_kwargs=node_kwargs) as fed:
        grid, do1 = fed.grid, datasite(1)
        inbox = fed.network.flwr_inbox(do1, APP)

        corrupted = _push(grid, do1)
        data = bytearray(corrupted.read_bytes())
        data[-3] ^= 0xFF  # a bit flip inside the array bytes
        corrupted.write_bytes(bytes(data))

        truncated = _push(grid, do1)
        truncated.write_bytes(truncated.read_bytes()[:-10])

        oversized = _push(grid, do1, size=20_000)  # 160 kB, over the node's 64 kB limit

        other_grid = DatasiteGrid(fed.network, "other-app", AGGREGATOR, [do1], timeout=5)
        (other_id,) = other_grid.push_messages([query_message(other_grid, do1)])
        other_grid.close()
        other = inbox / f"{other_id}.msg"
        os.replace(fed.network.flwr_inbox(do1, "other-app") / other.name, other)

        (inbox / "notes.txt").write_text("not a message")
        atomic_write_bytes(inbox / f"{'ab' * 16}.msg", os.urandom(300))

        fed.start(do1)
        replies = list(grid.send_and_receive([query_message(grid, do1)]))
        assert len(replies) == 1 and not replies[0].has_error()
        assert replies[0].content["stats"]["sum"] == pytest.approx(3.0)
        # files written within one clock tick share an mtime and go by name: the query may
        # have been answered before some bad file was looked at
        wait_for(lambda: not list(inbox.iterdir()), "the node to empty its inbox", timeout=10)
        result = fed.stop(do1)

    reasons = {Path(q.path).name.split("-", 1)[1]: q.reason for q in result.quarantined}
    assert "altered" in reasons[corrupted.name]
    assert "truncated" in reasons[truncated.name]
    assert "too large" in reasons[oversized.name]
    assert "app 'other-app'" in reasons[other.name]
    assert "unexpected file name" in reasons["notes.txt"]
    assert "bad magic" in reasons[f"{'ab' * 16}.msg"]
    assert result.answered == 1 and result.reason == "stopped"
    quarantine_dir = fed.network.message_quarantine_dir(do1, APP)
    for q in result.quarantined:
        assert Path(q.path).parent == quarantine_dir and Path(q.path).exists()
        assert Path(q.path + ".reason.txt").read_text().strip() == f"{q.kind}: {q.reason}"
    assert result.refusals == {"corrupted": 1, "malformed": 3, "too-large": 1, "wrong-app": 1}
    assert not list(inbox.iterdir())


def _reply_file(grid: DatasiteGrid, request: Path, sender: str) -> Path:
    """A well-formed reply file, authenticated as ``sender``'s, to the request in ``request``."""
    do1_keys = MessageKeys(grid.network, datasite(1))
    _, message = codec.read_message_file(
        request,
        recipient=datasite(1),
        app_name=APP,
        senders=(AGGREGATOR,),
        max_bytes=2**20,
        keys=do1_keys,
    )
    reply = Message(message.content, reply_to=message)
    flwr_compat.set_message_id(reply, "ef" * 16 if sender == datasite(1) else "fe" * 16)
    create_party(grid.network, sender)
    encoded = codec.encode_message(
        reply,
        sender=sender,
        recipient=AGGREGATOR,
        app_name=APP,
        max_bytes=2**20,
        keys=MessageKeys(grid.network, sender),
        encrypt=True,
    )
    path = grid.inbox / encoded.envelope.file_name
    atomic_write_bytes(path, encoded.to_bytes())
    return path


def test_grid_quarantines_bad_replies(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[], timeout=0.3) as fed:
        grid = fed.grid
        request = _push(grid, datasite(1))
        corrupted = _reply_file(grid, request, datasite(1))
        data = bytearray(corrupted.read_bytes())
        data[-1] ^= 0x01
        corrupted.write_bytes(bytes(data))
        stranger = _reply_file(grid, request, "eve@example.org")

        assert grid.pull_messages([request.stem]) == []
        reasons = sorted(q.reason for q in grid.report.quarantined)
        assert len(reasons) == 2
        assert "tag mismatch" in reasons[0]
        assert "sender eve@example.org is not a party" in reasons[1]
        assert grid.report.refusals == {"corrupted": 1, "wrong-sender": 1}
        assert not corrupted.exists() and not stranger.exists()
        assert not grid.report.ok


def test_restarted_node_does_not_answer_twice(tmp_path: Path) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def counting_app() -> ClientApp:
        inner = make_app()
        app = ClientApp()

        @app.query()
        def query(msg: Message, context: Context) -> Message:
            with lock:
                calls.append(msg.metadata.message_id)
            return inner(msg, context)

        return app

    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[], app=counting_app()) as fed:
        grid, do1 = fed.grid, datasite(1)
        request = _push(grid, do1)
        saved = request.read_bytes()
        message_id = request.stem

        fed.start(do1)
        replies = []
        for _ in range(200):
            replies += grid.pull_messages([message_id])
            if replies:
                break
            threading.Event().wait(0.05)
        assert len(replies) == 1
        first = fed.stop(do1)
        assert first.answered == 1 and not request.exists()

        # the request is back in the inbox, as if the node had died before removing it
        atomic_write_bytes(request, saved)
        restarted = DatasiteNode(
            fed.network, APP, do1, AGGREGATOR, counting_app(), data_path=tmp_path / "data" / do1
        )
        fed.nodes[do1] = restarted
        fed.start(do1)
        second_reply = list(grid.send_and_receive([query_message(grid, do1)]))
        assert len(second_reply) == 1
        wait_for(lambda: not request.exists(), "the node to refuse the replayed request")
        second = fed.stop(do1)

    assert second.answered == 1  # only the new message
    assert calls.count(message_id) == 1 and len(calls) == 2
    assert not request.exists()
    assert [q.kind for q in second.quarantined] == ["replay"]  # refused, set aside, logged
    assert fed.grid.report.late_replies == []


def test_node_stops_on_idle_timeout_and_stop_message(tmp_path: Path) -> None:
    network_root = tmp_path
    with federation(network_root, DELTAS[:2], COUNTS[:2], start=[]) as fed:
        idle = DatasiteNode(
            fed.network,
            APP,
            datasite(1),
            AGGREGATOR,
            make_app(),
            data_path=tmp_path / "data" / datasite(1),
            idle_timeout=0.2,
        )
        assert idle.serve().reason == "idle-timeout"

        fed.start(datasite(1))
        fed.start(datasite(2))
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, datasite(2))]))
        assert len(replies) == 1
        fed.grid.stop_datasites()
        for email in (datasite(1), datasite(2)):
            fed.threads[email].join(timeout=20)
        assert fed.results[datasite(1)].reason == "stop-message"
        assert fed.results[datasite(2)].reason == "stop-message"
        assert fed.results[datasite(2)].answered == 1


def test_two_nodes_cannot_serve_the_same_inbox(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1]) as fed:
        twin = DatasiteNode(
            fed.network, APP, datasite(1), AGGREGATOR, make_app(), data_path=tmp_path
        )
        for _ in range(100):  # the first node takes the lock as it starts serving
            if fed.network.answered_log(datasite(1), APP).exists():
                break
            threading.Event().wait(0.02)
        with pytest.raises(RuntimeError, match="already serving"):
            twin.serve()


def test_stale_stop_and_expired_messages_are_not_obeyed(tmp_path: Path) -> None:
    node_kwargs = {"idle_timeout": 0.3}
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[], node_kwargs=node_kwargs) as fed:
        grid, do1 = fed.grid, datasite(1)
        inbox = fed.network.flwr_inbox(do1, APP)
        old_stop = codec.encode_stop(
            sender=AGGREGATOR,
            recipient=do1,
            app_name=APP,
            keys=grid.keys,
            created_at=time.time() - 3600,
        )
        atomic_write_bytes(inbox / old_stop.envelope.file_name, old_stop.to_bytes())
        msg = Message(RecordDict(), grid.node_id_of(do1), "query", ttl=0.05)
        (expired_id,) = grid.push_messages([msg])
        time.sleep(0.1)
        fed.start(do1)
        fed.threads[do1].join(timeout=20)
        result = fed.results[do1]
    assert result.reason == "idle-timeout"  # the stop of an earlier run was ignored
    assert [q.reason.split(" ")[0] for q in result.quarantined] == ["expired"]
    assert expired_id in result.quarantined[0].path
    assert not list(inbox.iterdir())
