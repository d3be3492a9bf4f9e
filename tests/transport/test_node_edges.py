"""The datasite node at its edges: files it cannot set aside, a crash while replying, the
timeouts taken from the environment."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from syft_flwr.network import Network
from syft_flwr.transport import DatasiteGrid, DatasiteNode, NodeResult, inbox
from syft_flwr.transport import endpoint as endpoint_module
from tests.support import captured_logs
from tests.transport.helpers import (
    AGGREGATOR,
    APP,
    COUNTS,
    DELTAS,
    create_identities,
    datasite,
    federation,
    make_app,
    query_message,
)


@pytest.fixture
def log_lines():
    with captured_logs("INFO") as lines:
        yield lines


def _node(fed, email: str, app: ClientApp | None = None, **kwargs) -> DatasiteNode:
    return DatasiteNode(
        fed.network,
        APP,
        email,
        AGGREGATOR,
        app or make_app(),
        data_path=fed.nodes[email].data_path,
        **kwargs,
    )


def _serve(node_: DatasiteNode, deadline: float = 20.0) -> NodeResult:
    """``node_.serve()``, stopped and failed if it has not returned within ``deadline`` s."""
    results: list[NodeResult] = []
    thread = threading.Thread(target=lambda: results.append(node_.serve()), daemon=True)
    thread.start()
    thread.join(timeout=deadline)
    if thread.is_alive():
        node_.stop()
        thread.join(timeout=10)
        pytest.fail(f"the node did not reach its idle timeout within {deadline:g} s")
    assert results, "serve() raised (see the thread's exception above)"
    return results[0]


def _push(grid: DatasiteGrid, email: str) -> str:
    (message_id,) = grid.push_messages([query_message(grid, email)])
    return message_id


@pytest.mark.parametrize("how", ["replace-denied", "quarantine-is-a-file"])
def test_a_refused_file_that_cannot_be_moved_is_skipped_and_the_node_keeps_serving(
    tmp_path: Path, monkeypatch, log_lines, how: str
) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[]) as fed:
        do1 = datasite(1)
        box = fed.network.flwr_inbox(do1, APP)
        box.mkdir(parents=True, exist_ok=True)
        junk = box / "notes.txt"
        junk.write_text("not a message")
        os.utime(junk, (1, 1))  # oldest: handled first
        quarantine_dir = fed.network.message_quarantine_dir(do1, APP)
        attempts: list[str] = []
        if how == "replace-denied":
            real_replace = os.replace

            def replace(src, dst, *args, **kwargs):
                if Path(dst).parent == quarantine_dir:
                    attempts.append(Path(src).name)
                    raise PermissionError(13, "Permission denied", str(dst))
                return real_replace(src, dst, *args, **kwargs)

            monkeypatch.setattr(inbox.os, "replace", replace)
        else:
            quarantine_dir.parent.mkdir(parents=True, exist_ok=True)
            quarantine_dir.write_text("a file where the quarantine folder should be")

        message_id = _push(fed.grid, do1)
        result = _serve(_node(fed, do1, idle_timeout=0.6))  # several rescans while idle
        replies = fed.grid.pull_messages([message_id])

    assert result.reason == "idle-timeout"
    assert result.answered == 1 and len(replies) == 1  # the valid request after it was served
    assert junk.exists()  # left where it was
    assert [(Path(q.path).name, q.kind) for q in result.quarantined] == [("notes.txt", "malformed")]
    assert "not set aside" in result.quarantined[0].reason
    errors = [line for line in log_lines if "could not move it" in line]
    assert len(errors) == 1 and "notes.txt" in errors[0]  # once, not on every rescan
    if how == "replace-denied":
        assert attempts == ["notes.txt"]
    entries = [
        json.loads(line) for line in fed.network.security_log(do1, APP).read_text().splitlines()
    ]
    assert [(e["file"], e["quarantined"]) for e in entries] == [("notes.txt", None)]


class _Crash(BaseException):
    """Stands for the process dying (kill -9, power cut) at a given point."""


def test_a_crash_between_recording_and_writing_never_sends_a_second_reply(
    tmp_path: Path, monkeypatch
) -> None:
    calls: list[str] = []
    inner = make_app()
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        calls.append(msg.metadata.message_id)
        return inner(msg, context)

    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[]) as fed:
        do1 = datasite(1)
        message_id = _push(fed.grid, do1)
        request = fed.network.flwr_inbox(do1, APP) / f"{message_id}.msg"

        def crash(*args, **kwargs):
            raise _Crash

        with monkeypatch.context() as patch:
            patch.setattr(endpoint_module, "write_message", crash)
            with pytest.raises(_Crash):
                _node(fed, do1, app).serve()
        assert calls == [message_id] and request.exists()  # the app ran, nothing left

        restarted = _node(fed, do1, app, idle_timeout=0.3).serve()
        replies = fed.grid.pull_messages([message_id])

    assert calls == [message_id]  # the private data was not queried a second time
    assert restarted.answered == 0 and replies == []
    assert [q.kind for q in restarted.quarantined] == ["replay"]
    assert not request.exists()


def test_idle_timeout_from_the_environment_is_logged(
    tmp_path: Path, monkeypatch, log_lines
) -> None:
    monkeypatch.setenv("SYFT_FLWR_IDLE_TIMEOUT", "0.2")
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[]) as fed:
        idle = _node(fed, datasite(1))
        assert idle.idle_timeout == 0.2
        result = idle.serve()
    assert result.reason == "idle-timeout"
    stopped = [line for line in log_lines if "idle timeout" in line]
    assert len(stopped) == 1
    assert datasite(1) in stopped[0] and "no message for 0.2 s" in stopped[0]
    assert "SYFT_FLWR_IDLE_TIMEOUT" in stopped[0] and "stopping" in stopped[0]


def test_msg_timeout_from_the_environment_names_the_silent_datasite(
    tmp_path: Path, monkeypatch, log_lines
) -> None:
    monkeypatch.setenv("SYFT_FLWR_MSG_TIMEOUT", "1")
    network = Network.at(tmp_path)
    create_identities(network, [AGGREGATOR, datasite(1)])  # datasite 1 never serves
    grid = DatasiteGrid(network, APP, AGGREGATOR, [datasite(1)])  # no timeout argument
    try:
        assert grid.timeout == 1.0
        assert list(grid.send_and_receive([query_message(grid, datasite(1))])) == []
    finally:
        grid.close()
    assert grid.report.failures() == {datasite(1): "did not answer within 1 s"}
    assert any("no reply within 1 s" in line and datasite(1) in line for line in log_lines)


def test_the_grid_skips_a_refused_file_it_cannot_move_and_gets_its_reply(
    tmp_path: Path, log_lines
) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1]) as fed:
        grid = fed.grid
        junk = grid.inbox / "notes.txt"
        junk.write_text("not a reply")
        grid.quarantine_dir.parent.mkdir(parents=True, exist_ok=True)
        grid.quarantine_dir.write_text("a file where the quarantine folder should be")
        for _ in range(2):  # the second exchange scans the inbox again
            replies = list(grid.send_and_receive([query_message(grid, datasite(1))]))
            assert len(replies) == 1 and not replies[0].has_error()

    assert junk.exists()  # left where it was
    (refused,) = grid.report.quarantined  # refused once, not on every scan
    assert Path(refused.path).name == "notes.txt" and not refused.set_aside
    assert "not set aside" in refused.reason
    assert len([line for line in log_lines if "could not move it" in line]) == 1
