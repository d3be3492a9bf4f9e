"""What a party of the network (or anyone who can drop files through the sync) can try against
the Flower transport: every forged, altered, replayed or misdirected file is refused, set aside
with its reason, appended to the receiver's security.jsonl, and the receiver keeps serving."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from loguru import logger

from syft_flwr.crypto import MessageKeys, create_party
from syft_flwr.network import Network, atomic_write_bytes
from syft_flwr.transport import DatasiteGrid, DatasiteNode, codec, flwr_compat
from syft_flwr.transport.codec import MessageFileError
from tests.faults.helpers import wait_for
from tests.transport.helpers import (
    AGGREGATOR,
    APP,
    COUNTS,
    DELTAS,
    Federation,
    datasite,
    federation,
    make_app,
    query_message,
)

DO1, DO2 = datasite(1), datasite(2)
MARKER = "PLAINTEXT-MARKER-7f3a9c"


# -- forging files ------------------------------------------------------------------------------
def instruction(
    fed: Federation, recipient: str, message_id: str | None = None, run_id: int = 1
) -> Message:
    """A query a ClientApp of the tiny app answers, addressed to ``recipient`` (for run 1
    unless said otherwise, not the run of ``fed.grid``)."""
    flwr_compat.ensure_task_identity(1)
    msg = Message(
        RecordDict({"q": ConfigRecord({"stat": "sum"})}), fed.grid.node_id_of(recipient), "query"
    )
    flwr_compat.set_message_id(msg, message_id or os.urandom(16).hex())
    flwr_compat.set_route(msg, run_id=run_id, src_node_id=flwr_compat.SUPERLINK_NODE_ID)
    return msg


def encode(
    network: Network,
    message: Message,
    *,
    writer: str,
    sender: str,
    recipient: str,
    app_name: str = APP,
    encrypt: bool = True,
    created_at: float | None = None,
) -> codec.EncodedMessage:
    """A file for ``message`` that claims to come from ``sender``, authenticated with
    ``writer``'s keys."""
    return codec.encode_message(
        message,
        sender=sender,
        recipient=recipient,
        app_name=app_name,
        max_bytes=2**24,
        keys=MessageKeys(network, writer),
        encrypt=encrypt,
        created_at=created_at,
    )


def drop(inbox: Path, encoded: codec.EncodedMessage | bytes, name: str | None = None) -> Path:
    if isinstance(encoded, codec.EncodedMessage):
        name, encoded = encoded.envelope.file_name, encoded.to_bytes()
    assert name is not None
    path = inbox / name
    atomic_write_bytes(path, encoded)
    return path


def edit_header(data: bytes, **changes) -> bytes:
    """The same file with header fields changed after writing (header CRC made right again)."""
    magic, version, header_len, _ = struct.unpack(">8sHII", data[:18])
    header = json.loads(data[18 : 18 + header_len])
    header.update(changes)
    new = json.dumps(header).encode()
    return (
        struct.pack(">8sHII", magic, version, len(new), zlib.crc32(new))
        + new
        + data[18 + header_len :]
    )


def strip_mac(data: bytes) -> bytes:
    """The same file with its MAC (the 32 bytes after the header) blanked: unauthenticated."""
    end = 18 + struct.unpack(">8sHII", data[:18])[2]
    return data[:end] + codec.NO_MAC + data[end + codec.MAC_BYTES :]


def security_lines(network: Network, email: str) -> list[dict]:
    path = network.security_log(email, APP)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_reply(fed: Federation, request_id: str) -> Message:
    for _ in range(400):
        replies = list(fed.grid.pull_messages([request_id]))
        if replies:
            return replies[0]
        time.sleep(0.025)
    raise AssertionError(f"no reply to {request_id}")


def assert_logged(lines: list[dict], kinds: dict[str, str]) -> None:
    """Each file name in ``kinds`` is in the log once, with that kind and every field."""
    by_file = {line["file"]: line for line in lines}
    for name, kind in kinds.items():
        line = by_file[name]
        assert line["kind"] == kind, line
        assert set(line) >= {"ts", "kind", "file", "sender", "reason", "quarantined"}
        assert line["reason"] and abs(line["ts"] - time.time()) < 600
        assert Path(line["quarantined"]).exists()  # set aside, not deleted
        assert Path(line["quarantined"] + ".reason.txt").read_text().startswith(kind)


# -- the datasite's side ------------------------------------------------------------------------
def test_a_node_refuses_forged_altered_and_replayed_messages_and_keeps_serving(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[]) as fed:
        network, inbox = fed.network, fed.network.flwr_inbox(DO1, APP)
        (legit_id,) = fed.grid.push_messages([query_message(fed.grid, DO1)])
        legit = (inbox / f"{legit_id}.msg").read_bytes()  # what a sync could capture

        def from_aggregator(**kwargs) -> codec.EncodedMessage:
            return encode(
                network, instruction(fed, DO1), writer=AGGREGATOR, sender=AGGREGATOR,
                recipient=DO1, **kwargs,
            )  # fmt: skip

        expected: dict[str, str] = {}
        # do2 forges the aggregator's sender field, but has only its own keys to make a MAC
        spoof = encode(network, instruction(fed, DO1), writer=DO2, sender=AGGREGATOR, recipient=DO1)
        expected[drop(inbox, spoof).name] = "bad-mac"
        # do2 as itself: it is not the aggregator of the project do1 serves
        as_do2 = encode(network, instruction(fed, DO1), writer=DO2, sender=DO2, recipient=DO1)
        expected[drop(inbox, as_do2).name] = "wrong-sender"
        # a message without a MAC
        bare = from_aggregator()
        data = strip_mac(bare.to_bytes())
        expected[drop(inbox, data, bare.envelope.file_name).name] = "unauthenticated"
        # a header changed after writing (made to look fresher)
        tampered = from_aggregator(created_at=time.time() - 5)
        data = edit_header(tampered.to_bytes(), created_at=time.time())
        expected[drop(inbox, data, tampered.envelope.file_name).name] = "bad-mac"
        # a body changed after writing
        altered = from_aggregator()
        data = bytearray(altered.to_bytes())
        data[-20] ^= 0x01
        expected[drop(inbox, bytes(data), altered.envelope.file_name).name] = "corrupted"
        # a plain body changed after writing (its SHA-256 checksum no longer matches)
        plain = from_aggregator(encrypt=False)
        data = bytearray(plain.to_bytes())
        data[-3] ^= 0x01
        expected[drop(inbox, bytes(data), plain.envelope.file_name).name] = "corrupted"
        # a genuine, authenticated message that is too old, and one dated in the future
        expected[drop(inbox, from_aggregator(created_at=time.time() - 3600)).name] = "expired"
        expected[drop(inbox, from_aggregator(created_at=time.time() + 3600)).name] = "future"
        # a message for another app dropped into this app's inbox
        other = encode(
            network, instruction(fed, DO1), writer=AGGREGATOR, sender=AGGREGATOR, recipient=DO1,
            app_name="other-app",
        )  # fmt: skip
        expected[drop(inbox, other).name] = "wrong-app"
        # a message addressed to do2, dropped into do1's inbox
        misdirected = encode(
            network, instruction(fed, DO2), writer=AGGREGATOR, sender=AGGREGATOR, recipient=DO2
        )
        expected[drop(inbox, misdirected).name] = "wrong-recipient"

        fed.start(DO1)
        reply = wait_for_reply(fed, legit_id)  # the genuine request is answered
        assert not reply.has_error() and reply.content["stats"]["sum"] == pytest.approx(3.0)

        # the captured request, replayed after it was answered
        replayed = drop(inbox, legit, f"{legit_id}.msg")
        expected[replayed.name] = "replay"
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))
        assert len(replies) == 1 and not replies[0].has_error()  # still serving
        for _ in range(200):
            if not replayed.exists():
                break
            time.sleep(0.025)
        result = fed.stop(DO1)

    assert result.answered == 2
    got = {Path(q.path).name.split("-", 1)[1]: q.kind for q in result.quarantined}
    assert got == expected
    assert result.refusals["bad-mac"] == 2 and result.refusals["corrupted"] == 2
    spoofed = next(q for q in result.quarantined if q.path.endswith(spoof.envelope.file_name))
    assert spoofed.sender == AGGREGATOR  # the log says who the file claimed to be from
    lines = security_lines(fed.network, DO1)
    assert len(lines) == len(expected)
    assert_logged(lines, expected)
    assert all(line["receiver"] == DO1 for line in lines)
    assert not list(fed.network.flwr_inbox(DO1, APP).iterdir())
    assert security_lines(fed.network, AGGREGATOR) == []  # the aggregator saw nothing bad


def test_a_forged_stop_does_not_stop_a_node(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[1]) as fed:
        inbox = fed.network.flwr_inbox(DO1, APP)
        forged = codec.encode_stop(
            sender=AGGREGATOR, recipient=DO1, app_name=APP, keys=MessageKeys(fed.network, DO2)
        )
        drop(inbox, forged)
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))
        assert len(replies) == 1 and not replies[0].has_error()
        assert fed.threads[DO1].is_alive()
        # the query may be answered first (same clock tick, names in order): wait for the stop
        wait_for(lambda: not list(inbox.iterdir()), "the node to refuse the forged stop")
        result = fed.stop(DO1)
    assert result.reason == "stopped" and result.refusals == {"bad-mac": 1}


# -- the aggregator's side ----------------------------------------------------------------------
def test_the_grid_accepts_a_reply_only_from_the_datasite_it_asked(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[], timeout=20) as fed:
        grid, network = fed.grid, fed.network
        (request_id,) = grid.push_messages([query_message(grid, DO1)])
        request = instruction(fed, DO1, request_id)

        def reply(writer: str, sender: str, to: Message = request) -> codec.EncodedMessage:
            answer = Message(RecordDict({"stats": ConfigRecord({"sum": 666.0})}), reply_to=to)
            flwr_compat.set_message_id(answer, os.urandom(16).hex())
            return encode(network, answer, writer=writer, sender=sender, recipient=AGGREGATOR)

        expected: dict[str, str] = {}
        expected[drop(grid.inbox, reply(DO2, DO2)).name] = "wrong-sender"  # not asked
        expected[drop(grid.inbox, reply(DO2, DO1)).name] = "bad-mac"  # posing as do1
        bare = reply(DO1, DO1)
        data = strip_mac(bare.to_bytes())
        expected[drop(grid.inbox, data, bare.envelope.file_name).name] = "unauthenticated"
        # of this very run, yet to a request the grid never sent
        never_sent = reply(DO1, DO1, to=instruction(fed, DO1, run_id=grid.run.run_id))
        expected[drop(grid.inbox, never_sent).name] = "unexpected"
        assert list(grid.pull_messages([request_id])) == []  # none of them is the reply

        fed.start(DO1)
        for _ in range(400):  # the genuine reply, captured before the grid reads it
            files = list(grid.inbox.glob("*.msg"))
            if files:
                break
            time.sleep(0.025)
        (genuine,) = files
        captured = genuine.read_bytes()
        answer = wait_for_reply(fed, request_id)
        assert answer.content["stats"]["sum"] == pytest.approx(3.0)
        assert grid.email_of(answer.metadata.src_node_id) == DO1

        drop(grid.inbox, captured, genuine.name)  # replayed
        expected[genuine.name] = "replay"
        assert list(grid.pull_messages([request_id])) == []
        replies = list(grid.send_and_receive([query_message(grid, DO1)]))
        assert len(replies) == 1 and not replies[0].has_error()  # the grid carries on

    report = fed.grid.report
    assert not report.ok  # a run that refused files never reports plain success
    got = {Path(q.path).name.split("-", 1)[1]: q.kind for q in report.quarantined}
    assert got == expected
    assert report.to_dict()["refusals"] == report.refusals
    lines = security_lines(fed.network, AGGREGATOR)
    assert len(lines) == len(expected)
    assert_logged(lines, expected)
    assert {line["sender"] for line in lines} == {DO1, DO2}


def test_a_late_reply_from_an_earlier_run_is_dropped_quietly(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[]) as fed:
        old = Message(
            RecordDict({"stats": ConfigRecord({"sum": 1.0})}), reply_to=instruction(fed, DO1)
        )
        flwr_compat.set_message_id(old, os.urandom(16).hex())
        drop(fed.grid.inbox, encode(fed.network, old, writer=DO1, sender=DO1, recipient=AGGREGATOR))
        time.sleep(0.01)
        with DatasiteGrid(fed.network, APP, AGGREGATOR, [DO1, DO2]) as rerun:
            assert list(rerun.pull_messages(["0" * 32])) == []
            assert rerun.report.late_replies == [DO1] and rerun.report.quarantined == []
            # the datasite answers the earlier run once this one has begun: the reply's Flower
            # run id says it is not for this run
            later = Message(
                RecordDict({"stats": ConfigRecord({"sum": 2.0})}), reply_to=instruction(fed, DO1)
            )
            flwr_compat.set_message_id(later, os.urandom(16).hex())
            drop(
                fed.grid.inbox,
                encode(fed.network, later, writer=DO1, sender=DO1, recipient=AGGREGATOR),
            )
            assert list(rerun.pull_messages(["0" * 32])) == []
            assert rerun.report.late_replies == [DO1, DO1] and rerun.report.quarantined == []
        assert not list(fed.grid.inbox.glob("*.msg"))
    assert security_lines(fed.network, AGGREGATOR) == []


def test_a_message_to_an_app_nobody_serves_is_reported_as_unanswered(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[1]) as fed:
        ghost = DatasiteGrid(fed.network, "ghost-app", AGGREGATOR, [DO1], timeout=0.5)
        try:
            replies = list(ghost.send_and_receive([query_message(ghost, DO1)]))
            assert replies == []
            assert ghost.report.rounds[-1].missing == [DO1]
            assert "did not answer within 0.5 s" in ghost.report.failures()[DO1]
            assert not list(fed.network.flwr_inbox(DO1, "ghost-app").glob("*.msg"))  # withdrawn
        finally:
            ghost.close()
        # do1's node for tiny-app, meanwhile, serves on and saw nothing to refuse
        assert len(list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))) == 1
        result = fed.stop(DO1)
    assert result.quarantined == [] and security_lines(fed.network, DO1) == []


def test_a_datasite_without_published_keys_is_reported_not_waited_for(tmp_path: Path) -> None:
    network = Network.at(tmp_path)
    create_party(network, AGGREGATOR)
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    try:
        with DatasiteGrid(network, APP, AGGREGATOR, [DO1], timeout=30) as grid:
            started = time.monotonic()
            assert list(grid.send_and_receive([query_message(grid, DO1)])) == []
            assert time.monotonic() - started < 10  # no point waiting for the timeout
            assert grid.report.rounds[-1].missing == [DO1]
            grid.stop_datasites()  # no stop either: nothing can be written to it, no error
    finally:
        logger.remove(sink)
    assert any("cannot send a message to" in w and "published keys" in w for w in warnings)
    assert not list(network.flwr_inbox(DO1, APP).glob("*.msg"))


def test_a_party_without_keys_cannot_start_a_grid_or_a_node(tmp_path: Path) -> None:
    network = Network.at(tmp_path)
    with pytest.raises(FileNotFoundError, match="create_party"):
        DatasiteGrid(network, APP, AGGREGATOR, [DO1])
    with pytest.raises(FileNotFoundError, match="create_party"):
        DatasiteNode(network, APP, DO1, AGGREGATOR, make_app(), data_path=tmp_path)


# -- encryption -----------------------------------------------------------------------------------
def test_files_on_disk_hold_only_ciphertext_and_only_the_recipient_can_open_them(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[]) as fed:
        network = fed.network
        create_party(network, "eve@example.org")
        payload = np.frombuffer((MARKER * 100).encode(), dtype=np.uint8)
        content = RecordDict(
            {"config": ConfigRecord({"note": MARKER}), "arrays": ArrayRecord([payload])}
        )
        (sent_id,) = fed.grid.push_messages([Message(content, fed.grid.node_id_of(DO1), "query")])
        path = network.flwr_inbox(DO1, APP) / f"{sent_id}.msg"
        data = path.read_bytes()
        assert MARKER.encode() not in data

        with DatasiteGrid(network, "plain-app", AGGREGATOR, [DO1], encrypt=False) as plain:
            (plain_id,) = plain.push_messages([Message(content, plain.node_id_of(DO1), "query")])
        plain_file = network.flwr_inbox(DO1, "plain-app") / f"{plain_id}.msg"
        assert MARKER.encode() in plain_file.read_bytes()  # the control: same content, plain

        def open_as(email: str, *, header_checked_by: str | None = None) -> Message | None:
            """Read the file with ``email``'s keys (the header's MAC checked with
            ``header_checked_by``'s, when given)."""
            keys = MessageKeys(network, email)
            header_keys = MessageKeys(network, header_checked_by) if header_checked_by else keys
            with open(path, "rb") as f:
                envelope = codec.read_envelope(
                    f, path.name, recipient=DO1, app_name=APP, senders=(AGGREGATOR,),
                    max_bytes=2**24, keys=header_keys,
                )  # fmt: skip
                segments = codec.read_segments(f, envelope, keys=keys)
            return codec.decode_message(envelope, segments)

        for stranger in (DO2, "eve@example.org"):  # a valid file, but not theirs
            with pytest.raises(MessageFileError) as err:  # they cannot even tell who wrote it
                open_as(stranger)
            assert err.value.kind == "bad-mac"
            with pytest.raises(MessageFileError) as err:  # nor read it past a checked header
                open_as(stranger, header_checked_by=DO1)
            assert err.value.kind == "corrupted" and "does not decrypt" in err.value.reason
        opened = open_as(DO1)
        assert opened.content["config"]["note"] == MARKER
        np.testing.assert_array_equal(opened.content["arrays"].to_numpy_ndarrays()[0], payload)
