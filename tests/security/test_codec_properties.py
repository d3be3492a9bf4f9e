"""The message decoder against arbitrary and mutated files: it never crashes, never hangs, and
refuses with MessageFileError only; it never accepts a file that says something else than what
its sender wrote (and authenticated)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syft_flwr.crypto import MessageKeys, create_party
from syft_flwr.network import Network
from syft_flwr.transport import codec, flwr_compat
from syft_flwr.transport.codec import MessageFileError
from syft_flwr.transport.errors import KINDS
from syft_flwr.transport.ids import node_id_for

SENDER, RECIPIENT, APP = "ds@openmined.org", "do1@openmined.org", "app"
MAX_BYTES = 2**20

#: a deadline per example is the hang guard (generous: the machine is shared); no example
#: database in the repository; a fixed budget so the suite stays fast
PROPERTIES = settings(
    database=None,
    deadline=5000,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Parties:
    def __init__(self, root: Path):
        self.root = root
        network = Network(root / "net")
        for email in (SENDER, RECIPIENT):
            create_party(network, email)
        self.sender = MessageKeys(network, SENDER)
        self.recipient = MessageKeys(network, RECIPIENT)
        flwr_compat.ensure_task_identity(1)
        message = Message(
            RecordDict(
                {
                    "config": ConfigRecord({"lr": 0.1, "note": "hello"}),
                    "arrays": ArrayRecord([np.arange(64, dtype=np.float32)]),
                }
            ),
            node_id_for(RECIPIENT),
            "train",
        )
        flwr_compat.set_message_id(message, "ab" * 16)
        self.originals = {
            encrypt: codec.encode_message(
                message,
                sender=SENDER,
                recipient=RECIPIENT,
                app_name=APP,
                max_bytes=MAX_BYTES,
                keys=self.sender,
                encrypt=encrypt,
            ).to_bytes()
            for encrypt in (False, True)
        }
        self.path = root / "inbox" / ("ab" * 16 + codec.FILE_SUFFIX)
        self.path.parent.mkdir()

    def decode(self, data: bytes) -> Message | None:
        """Feed ``data`` to the reader as a message file; MessageFileError when refused."""
        self.path.write_bytes(data)
        _, message = codec.read_message_file(
            self.path,
            recipient=RECIPIENT,
            app_name=APP,
            senders=(SENDER,),
            max_bytes=MAX_BYTES,
            keys=self.recipient,
        )
        return message


@pytest.fixture(scope="module")
def parties(tmp_path_factory) -> Parties:
    return Parties(tmp_path_factory.mktemp("codec-properties"))


def _split(data: bytes) -> tuple[bytes, dict, bytes]:
    _, _, header_len, _ = struct.unpack(">8sHII", data[: codec.PREFIX_SIZE])
    end = codec.PREFIX_SIZE + header_len
    return data[:8], json.loads(data[codec.PREFIX_SIZE : end]), data[end:]


def _join(magic: bytes, header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return (
        struct.pack(">8sHII", magic, codec.FORMAT_VERSION, len(raw), zlib.crc32(raw)) + raw + body
    )


def _accepts_only_the_original(parties: Parties, data: bytes, original: bytes) -> None:
    """The reader either refuses ``data`` (MessageFileError, nothing else) or reads exactly
    the message the sender wrote."""
    try:
        message = parties.decode(data)
    except MessageFileError as exc:
        assert exc.reason and exc.kind in KINDS
        return
    want = parties.decode(original)
    assert message is not None and want is not None
    assert message.metadata.message_id == want.metadata.message_id
    assert dict(message.content["config"]) == dict(want.content["config"])
    assert message.content["arrays"]["0"].data == want.content["arrays"]["0"].data


@PROPERTIES
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_are_refused(parties: Parties, data: bytes) -> None:
    with pytest.raises(MessageFileError):
        parties.decode(data)


@PROPERTIES
@given(prefix=st.binary(max_size=64), encrypt=st.booleans())
def test_a_valid_magic_then_garbage_is_refused(
    parties: Parties, prefix: bytes, encrypt: bool
) -> None:
    original = parties.originals[encrypt]
    with pytest.raises(MessageFileError):
        parties.decode(original[:8] + prefix)


@PROPERTIES
@given(
    encrypt=st.booleans(),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 7)), min_size=1, max_size=8),
)
def test_bit_flips_are_refused(parties: Parties, encrypt: bool, flips) -> None:
    original = parties.originals[encrypt]
    data = bytearray(original)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    _accepts_only_the_original(parties, bytes(data), original)


@PROPERTIES
@given(encrypt=st.booleans(), cut=st.integers(min_value=0), extra=st.binary(max_size=32))
def test_truncated_or_extended_files_are_refused(
    parties: Parties, encrypt: bool, cut: int, extra: bytes
) -> None:
    original = parties.originals[encrypt]
    truncated = original[: cut % len(original)]
    with pytest.raises(MessageFileError):
        parties.decode(truncated)
    if extra:
        with pytest.raises(MessageFileError):
            parties.decode(original + extra)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "sender",
    "recipient",
    "app_name",
    "message_id",
    "kind",
    "reply_to",
    "created_at",
    "segments",
    "checksum_algo",
    "chunk_size",
    "checksums",
    "encryption",
    "mac",
]


@PROPERTIES
@given(
    encrypt=st.booleans(),
    edits=st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=8), JSON, min_size=1, max_size=3
    ),
    drop=st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_header_edits_are_refused(parties: Parties, encrypt: bool, edits: dict, drop) -> None:
    original = parties.originals[encrypt]
    magic, header, body = _split(original)
    header.update(edits)
    for name in drop:
        header.pop(name, None)
    _accepts_only_the_original(parties, _join(magic, header, body), original)


@PROPERTIES
@given(encrypt=st.booleans(), depth=st.integers(min_value=1, max_value=100_000))
def test_deeply_nested_headers_are_refused(parties: Parties, encrypt: bool, depth: int) -> None:
    magic, _, body = _split(parties.originals[encrypt])
    raw = b"[" * depth + b"]" * depth
    data = (
        struct.pack(">8sHII", magic, codec.FORMAT_VERSION, len(raw), zlib.crc32(raw)) + raw + body
    )
    with pytest.raises(MessageFileError):
        parties.decode(data)


@PROPERTIES
@given(
    encrypt=st.booleans(),
    header_len=st.integers(min_value=0, max_value=2**32 - 1),
    crc=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_lying_prefixes_are_refused(
    parties: Parties, encrypt: bool, header_len: int, crc: int
) -> None:
    original = parties.originals[encrypt]
    prefix = struct.pack(">8sHII", codec.MAGIC, codec.FORMAT_VERSION, header_len, crc)
    with pytest.raises(MessageFileError):
        parties.decode(prefix + original[codec.PREFIX_SIZE :])


def test_the_originals_are_accepted(parties: Parties) -> None:
    for data in parties.originals.values():
        message = parties.decode(data)
        assert message is not None and message.content["config"]["note"] == "hello"
