"""The message file format: round trips (authenticated; plain or encrypted
bodies) and what a reader
refuses before decoding."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from syft_flwr.crypto import MessageAuthError, MessageKeys, create_party
from syft_flwr.network import Network
from syft_flwr.transport import codec, flwr_compat
from syft_flwr.transport.codec import MessageFileError
from syft_flwr.transport.ids import node_id_for

SENDER, RECIPIENT, APP = "ds@openmined.org", "do1@openmined.org", "app"
KEYS: dict[str, MessageKeys] = {}


@pytest.fixture(autouse=True)
def parties(tmp_path: Path) -> dict[str, MessageKeys]:
    """Keys for the sender and the recipient on a fresh network (used by _encode/_read)."""
    network = Network(tmp_path / "net")
    KEYS.clear()
    for email in (SENDER, RECIPIENT):
        create_party(network, email)
        KEYS[email] = MessageKeys(network, email)
    return KEYS


def _message(content: RecordDict) -> Message:
    flwr_compat.ensure_task_identity(1)
    msg = Message(content, node_id_for(RECIPIENT), "train")
    flwr_compat.set_message_id(msg, "1" * 32)
    return msg


def _encode(msg: Message, encrypt: bool = False, **kwargs) -> codec.EncodedMessage:
    args = {"sender": SENDER, "recipient": RECIPIENT, "app_name": APP, "max_bytes": 2**24}
    args = {**args, **kwargs}
    return codec.encode_message(msg, keys=KEYS[args["sender"]], encrypt=encrypt, **args)


def _read(tmp_path: Path, data: bytes, name: str = "1" * 32 + ".msg", **kwargs) -> Message:
    path = tmp_path / name
    path.write_bytes(data)
    expect = {"recipient": RECIPIENT, "app_name": APP, "senders": (SENDER,), "max_bytes": 2**24}
    expect = {**expect, **kwargs}
    keys = KEYS[expect["recipient"]]
    with open(path, "rb") as f:
        envelope = codec.read_envelope(f, path.name, keys=keys, **expect)
        segments = codec.read_segments(f, envelope, keys=keys)
    return codec.decode_message(envelope, segments)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_round_trip_keeps_arrays_records_and_order(tmp_path: Path, encrypt: bool) -> None:
    arrays_a = [np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], dtype=np.int64)]
    content = RecordDict(
        {
            "weights": ArrayRecord(arrays_a),
            "config": ConfigRecord({"lr": 0.01, "tag": "x"}),
            "extra": ArrayRecord({"z": Array(np.zeros((0, 2))), "y": Array(np.ones(5))}),
            "metrics": MetricRecord({"n": 10}),
        }
    )
    msg = _message(content)
    encoded = _encode(msg, encrypt=encrypt)
    assert encoded.envelope.encrypted is encrypt and len(encoded.mac) == codec.MAC_BYTES
    assert len(encoded.envelope.segments) == 1 + 4  # the skeleton + one segment per array
    back = _read(tmp_path, encoded.to_bytes())
    assert list(back.content.keys()) == ["weights", "config", "extra", "metrics"]
    for got, want in zip(back.content["weights"].to_numpy_ndarrays(), arrays_a, strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    assert list(back.content["extra"].keys()) == ["z", "y"]
    assert back.content["extra"]["z"].numpy().shape == (0, 2)
    assert dict(back.content["config"]) == {"lr": 0.01, "tag": "x"}
    assert back.metadata.message_id == "1" * 32
    assert back.metadata.dst_node_id == node_id_for(RECIPIENT)
    # the original message is untouched by encoding
    assert content["weights"]["0"].data == Array(arrays_a[0]).data


@pytest.mark.parametrize("encrypt", [False, True], ids=["plain", "encrypted"])
def test_error_reply_round_trip(tmp_path: Path, encrypt: bool) -> None:
    request = _message(RecordDict())
    reply = Message(Error(code=2, reason="ValueError: bad"), reply_to=request)
    flwr_compat.set_message_id(reply, "2" * 32)
    encoded = _encode(reply, encrypt=encrypt, sender=RECIPIENT, recipient=SENDER)
    assert encoded.envelope.reply_to == "1" * 32
    back = _read(
        tmp_path, encoded.to_bytes(), "2" * 32 + ".msg", recipient=SENDER, senders=(RECIPIENT,)
    )
    assert back.has_error() and back.error.reason == "ValueError: bad"
    assert back.metadata.reply_to_message_id == "1" * 32


def test_sender_refuses_a_message_over_the_limit() -> None:
    msg = _message(RecordDict({"a": ArrayRecord([np.zeros(1000)])}))
    with pytest.raises(ValueError, match="larger than the limit"):
        _encode(msg, max_bytes=1000)


def _valid_bytes(encrypt: bool = False) -> bytes:
    return _encode(_message(RecordDict({"a": ArrayRecord([np.ones(4)])})), encrypt).to_bytes()


def _with_header(data: bytes, **changes) -> bytes:
    """The same file with header fields changed (and a correct header checksum)."""
    magic, version, header_len, _ = struct.unpack(">8sHII", data[:18])
    header = json.loads(data[18 : 18 + header_len])
    header.update(changes)
    new = json.dumps(header).encode()
    return (
        struct.pack(">8sHII", magic, version, len(new), zlib.crc32(new))
        + new
        + data[18 + header_len :]
    )


def _with_mac(data: bytes, mac: bytes) -> bytes:
    """The same file with another MAC (the 32 bytes after the header)."""
    end = 18 + struct.unpack(">8sHII", data[:18])[2]
    return data[:end] + mac + data[end + codec.MAC_BYTES :]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"NOTFLWR!" + d[8:], "bad magic"),
        (lambda d: d[:8] + struct.pack(">H", 1) + d[10:], "format version 1 is not supported"),
        (lambda d: d[:5], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"x", "unexpected bytes"),
        (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "header checksum mismatch"),
        (lambda d: d[:-2] + bytes([d[-2] ^ 1]) + d[-1:], "body checksum mismatch"),
        (lambda d: _with_header(d, recipient="do2@openmined.org"), "addressed to do2"),
        (lambda d: _with_header(d, sender="eve@example.org"), "is not a party"),
        (lambda d: _with_header(d, app_name="other"), "for app 'other'"),
        (lambda d: _with_header(d, signature="abc"), "unknown ['signature']"),
        (lambda d: _with_mac(d, b"\x01" * 32), "bad MAC"),
        (lambda d: _with_mac(d, codec.NO_MAC), "unauthenticated"),
        (lambda d: _with_header(d, created_at=1.0), "bad MAC"),
        (lambda d: _with_header(d, checksum_algo="md5"), "checksum algorithm 'md5'"),
        (lambda d: _with_header(d, checksum_algo="crc32"), "checksum algorithm 'crc32'"),
        (lambda d: _with_header(d, message_id="../../etc"), "message_id"),
        (lambda d: _with_header(d, message_id="3" * 32), "does not match message id"),
        (lambda d: _with_header(d, extra=1), "unknown ['extra']"),
    ],
)
def test_reader_refuses_before_decoding(tmp_path: Path, mutate, reason: str) -> None:
    with pytest.raises(MessageFileError) as err:
        _read(tmp_path, mutate(_valid_bytes()))
    assert reason in err.value.reason


def test_size_limit_is_checked_before_reading_the_body(tmp_path: Path) -> None:
    data = _valid_bytes()
    with pytest.raises(MessageFileError) as err:
        _read(tmp_path, data, max_bytes=10)
    assert "too large" in err.value.reason


def test_header_lengths_are_consistent() -> None:
    encoded = _encode(_message(RecordDict({"a": ArrayRecord([np.ones(4)])})))
    data = encoded.to_bytes()
    assert len(data) == encoded.size
    f = io.BytesIO(data)
    magic, version, header_len, crc = struct.unpack(">8sHII", f.read(18))
    assert (magic, version) == (codec.MAGIC, codec.FORMAT_VERSION)
    assert len(data) == 18 + header_len + codec.MAC_BYTES + encoded.envelope.body_length


@pytest.mark.parametrize(
    ("mutate", "kind", "reason"),
    [
        (lambda d: d[:-2] + bytes([d[-2] ^ 1]) + d[-1:], "corrupted", "tag mismatch"),
        (lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:], "corrupted", "does not decrypt"),
        (lambda d: _with_header(d, encryption=None), "malformed", "plain body"),
        (lambda d: _with_header(d, checksum_algo="sha256"), "malformed", "encrypted body"),
        (lambda d: _with_header(d, reply_to="2" * 32), "bad-mac", "bad MAC"),
    ],
)
def test_encrypted_bodies_refuse_alterations(
    tmp_path: Path, mutate, kind: str, reason: str
) -> None:
    with pytest.raises(MessageFileError) as err:
        _read(tmp_path, mutate(_valid_bytes(encrypt=True)))
    assert err.value.kind == kind and reason in err.value.reason
    assert err.value.sender == SENDER


def test_refusals_say_what_kind_and_who_claimed_to_send(tmp_path: Path) -> None:
    cases = {
        "bad-mac": _with_header(_valid_bytes(), created_at=2.0),
        "unauthenticated": _with_mac(_valid_bytes(), codec.NO_MAC),
        "wrong-sender": _with_header(_valid_bytes(), sender="eve@example.org"),
        "wrong-recipient": _with_header(_valid_bytes(), recipient="do2@openmined.org"),
        "wrong-app": _with_header(_valid_bytes(), app_name="other"),
        "too-large": _valid_bytes(),
        "malformed": b"junk" * 10,
    }
    for kind, data in cases.items():
        with pytest.raises(MessageFileError) as err:
            _read(tmp_path, data, max_bytes=10 if kind == "too-large" else 2**24)
        assert err.value.kind == kind, (kind, err.value.reason)
    assert err.value.sender is None  # nothing could be read of the junk's header


def test_freshness_refuses_old_and_future_files() -> None:
    envelope = codec.Envelope(SENDER, RECIPIENT, APP, "1" * 32, created_at=1000.0)
    codec.check_freshness(envelope, ttl=60, now=1059.0)
    with pytest.raises(MessageFileError) as err:
        codec.check_freshness(envelope, ttl=60, now=1061.0)
    assert err.value.kind == "expired" and "over the message TTL of 60 s" in err.value.reason
    with pytest.raises(MessageFileError) as err:
        codec.check_freshness(envelope, ttl=60, now=1000.0 - codec.MAX_CLOCK_SKEW - 1)
    assert err.value.kind == "future"


def test_node_ids_are_stable_positive_and_distinct() -> None:
    ids = {node_id_for(f"do{i}@openmined.org") for i in range(1000)}
    assert len(ids) == 1000
    assert all(1 < i < 2**63 for i in ids)
    assert node_id_for("do1@openmined.org") == node_id_for("do1@openmined.org")


def test_large_segments_are_checked_chunk_by_chunk(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(codec, "CHUNK_SIZE", 4096)
    values = np.arange(10_000, dtype=np.float64)  # 80 kB: 20 chunks, hashed in parallel
    encoded = _encode(_message(RecordDict({"a": ArrayRecord([values])})), encrypt=False)
    assert encoded.envelope.chunk_size == 4096
    assert len(encoded.envelope.checksums[1]) == 20
    back = _read(tmp_path, encoded.to_bytes())
    np.testing.assert_array_equal(back.content["a"].to_numpy_ndarrays()[0], values)

    data = bytearray(encoded.to_bytes())
    data[-30_000] ^= 0x10
    with pytest.raises(MessageFileError) as err:
        _read(tmp_path, bytes(data))
    assert "body checksum mismatch in segment 1, bytes" in err.value.reason


def test_large_encrypted_bodies_go_through_a_reused_scratch_buffer(tmp_path: Path) -> None:
    values = np.random.default_rng(1).random(300_000)  # 2.4 MB, over SCRATCH_MIN_BYTES
    scratch = codec.Scratch()
    msg = _message(RecordDict({"a": ArrayRecord([values])}))
    encoded = _encode(msg, encrypt=True, scratch=scratch)
    assert isinstance(encoded.buffers[2], memoryview)  # written into the scratch buffer
    data = encoded.to_bytes()
    assert values.tobytes()[:4096] not in data
    path = tmp_path / encoded.envelope.file_name
    path.write_bytes(data)
    keys = KEYS[RECIPIENT]
    with open(path, "rb") as f:
        envelope = codec.read_envelope(
            f,
            path.name,
            recipient=RECIPIENT,
            app_name=APP,
            senders=(SENDER,),
            max_bytes=2**24,
            keys=keys,
        )
        segments = codec.read_segments(f, envelope, keys=keys, scratch=scratch)
    back = codec.decode_message(envelope, segments)
    np.testing.assert_array_equal(back.content["a"].to_numpy_ndarrays()[0], values)


def test_a_mac_holds_for_one_direction_only() -> None:
    """A datasite's reply copied back into its own inbox, relabelled as the aggregator's,
    does not pass: each direction has its own MAC key."""
    ds, do = KEYS[SENDER], KEYS[RECIPIENT]
    mac = do.mac(sender=RECIPIENT, recipient=SENDER, data=b"header")
    ds.check_mac(sender=RECIPIENT, recipient=SENDER, data=b"header", mac=mac)  # as written
    for reader, sender, recipient in ((do, SENDER, RECIPIENT), (ds, RECIPIENT, SENDER)):
        data = b"header" if sender == SENDER else b"headeR"  # reflected, or altered
        # the codec refuses it as kind "bad-mac" (test_refusals_say_what_kind_and_who_claimed...)
        with pytest.raises(MessageAuthError, match="bad MAC") as err:
            reader.check_mac(sender=sender, recipient=recipient, data=data, mac=mac)
        assert err.value.sender == sender
