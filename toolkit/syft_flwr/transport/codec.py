"""Flower messages as files: a small versioned, authenticated header, then the message.

Layout of a message file (all integers big-endian)::

    magic         8 bytes   b"SYFTFLWR"
    version       u16       FORMAT_VERSION (4)
    header_len    u32       length of the JSON header
    header_crc    u32       CRC-32 of the JSON header
    header        JSON      sender, recipient, app_name, message_id, kind, reply_to,
                            created_at, segments (byte counts on disk), checksum_algo,
                            chunk_size, checksums, encryption
    mac           32 bytes  HMAC-SHA256 of the header, sender to recipient
    body          segments, back to back:
                    [0]   the Flower message serialized with flwr's protobuf serde, with
                          the bytes of every Array detached (``data`` left empty)
                    [1:]  the detached Array bytes, in content order

``mac`` authenticates the header's bytes exactly as written, under a key only the sender and
the recipient can derive, one per direction (:mod:`syft_flwr.crypto.messages`). The
reader checks it over the bytes it read, so the header is serialized once and never put in
canonical form. Since the header holds the body's checksums, the MAC covers the whole file.
An all-zero MAC means the file is unauthenticated (it is refused as such).

A body is either plain, with SHA-256 checksums of each ``chunk_size`` bytes of each segment
(``checksum_algo`` "sha256"; a cryptographic hash, since the MAC relies on it), or
encrypted to the recipient (``encryption`` = {"alg", "salt"}, ``checksum_algo``
"aes-256-gcm"): each segment is AES-256-GCM ciphertext followed by its 16-byte tag, and the
header's checksum of a segment is that tag. See :mod:`syft_flwr.crypto.messages`.

Detaching the array bytes lets a 100 MB ArrayRecord go from ``Array.data`` to the file and
from the file to ``Array.data`` with one copy each way (flwr's serde copies it several
times, and building the protobuf of a large ArrayRecord is slow). Everything else about
the message (metadata, error, config and metric records, array dtype/shape) is flwr's
own protobuf.

Readers validate the prefix, the header, the size limit, the sender/recipient/app, the
MAC and the body checksums (or tags) *before* decoding anything; any failure is a
:class:`MessageFileError` whose ``reason`` says what was wrong and whose ``kind`` says what
sort of refusal it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import struct
import time
import zlib
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flwr.app import Array, ArrayRecord, Message, RecordDict

from syft_flwr.crypto.errors import (
    MessageAuthError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
)
from syft_flwr.crypto.messages import (
    CIPHER,
    MAC_BYTES,
    SALT_BYTES,
    TAG_BYTES,
    MessageKeys,
    segment_aad,
    segment_nonce,
)
from syft_flwr.network import validate_email, validate_name
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.errors import IncompleteMessageError, MessageFileError
from syft_flwr.transport.ids import is_message_id, new_message_id
from syft_flwr.transport.settings import MAX_CLOCK_SKEW

__all__ = ["MessageFileError"]

MAGIC = b"SYFTFLWR"
FORMAT_VERSION = 4
_PREFIX = struct.Struct(">8sHII")
PREFIX_SIZE = _PREFIX.size
#: the MAC of a file written without one (never a real MAC: refused as unauthenticated)
NO_MAC = bytes(MAC_BYTES)
#: the header's one serialization: compact, ASCII only (its bytes are what is authenticated)
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
MAX_HEADER_BYTES = 8 * 1024 * 1024
FILE_SUFFIX = ".msg"

KIND_MESSAGE = "message"
KIND_STOP = "stop"
_KINDS = (KIND_MESSAGE, KIND_STOP)


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


#: checksums of plain bodies. The MAC covers them, so they must be a cryptographic hash
#: (CRC-32 could be forged to match altered bytes). SHA-256 runs at ~1.1 GB/s per core here.
CHECKSUMS = {"sha256": _sha256}
DEFAULT_CHECKSUM = "sha256"
#: ``checksum_algo`` of encrypted bodies: the checksums are the segments' GCM tags
GCM = "aes-256-gcm"
#: bytes per checksum; segments longer than this are hashed in parallel
CHUNK_SIZE = 8 * 1024 * 1024
_MIN_CHUNK, _MAX_CHUNK = 4096, 1 << 30
_HASH_THREADS = max(1, min(4, os.cpu_count() or 1))
#: bodies at least this large go through a :class:`Scratch` buffer when one is given
SCRATCH_MIN_BYTES = 1024 * 1024
#: a scratch buffer larger than this is dropped after use instead of kept for the next message
SCRATCH_KEEP_BYTES = 256 * 1024 * 1024
#: cryptography >= 44 encrypts into a caller's buffer
_ENCRYPT_INTO = hasattr(AESGCM, "encrypt_into")


class Scratch:
    """A buffer reused from one large message to the next.

    Fresh memory for a 100 MB body costs more (page faults) than encrypting it; a party that
    encrypts or decrypts one large message after another writes them through one buffer.
    Not thread-safe: one per reader/writer, used by one message at a time.
    """

    def __init__(self, keep_bytes: int = SCRATCH_KEEP_BYTES) -> None:
        self.keep_bytes = keep_bytes
        self._buffer: bytearray | None = None

    def get(self, size: int) -> memoryview:
        if self._buffer is None or len(self._buffer) < size:
            self._buffer = None  # free the old one before allocating the new one
            self._buffer = bytearray(size)
        return memoryview(self._buffer)[:size]

    def done(self) -> None:
        """Call when the buffer's contents are no longer needed."""
        if self._buffer is not None and len(self._buffer) > self.keep_bytes:
            self._buffer = None

    def release(self) -> None:
        self._buffer = None


def _b64decode(value: object, size: int) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    return raw if len(raw) == size else None


def _is_hex(value: object, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Envelope:
    """The header of a message file."""

    sender: str
    recipient: str
    app_name: str
    message_id: str
    kind: str = KIND_MESSAGE
    reply_to: str = ""
    created_at: float = 0.0
    segments: tuple[int, ...] = ()
    checksum_algo: str = DEFAULT_CHECKSUM
    chunk_size: int = CHUNK_SIZE
    checksums: tuple[tuple[str, ...], ...] = ()
    #: base64 salt of an encrypted body (None: the body is plain)
    encryption_salt: str | None = None
    format_version: int = field(default=FORMAT_VERSION, compare=False)

    @property
    def encrypted(self) -> bool:
        return self.encryption_salt is not None

    @property
    def body_length(self) -> int:
        """Bytes of the body on disk."""
        return sum(self.segments)

    @property
    def payload_length(self) -> int:
        """Bytes of the message itself (without the GCM tags of an encrypted body)."""
        return self.body_length - (TAG_BYTES * len(self.segments) if self.encrypted else 0)

    @property
    def file_name(self) -> str:
        return self.message_id + FILE_SUFFIX

    def fields(self) -> dict[str, Any]:
        """The header's JSON fields."""
        encryption = (
            None if self.encryption_salt is None else {"alg": CIPHER, "salt": self.encryption_salt}
        )
        return {
            "sender": self.sender,
            "recipient": self.recipient,
            "app_name": self.app_name,
            "message_id": self.message_id,
            "kind": self.kind,
            "reply_to": self.reply_to,
            "created_at": self.created_at,
            "segments": list(self.segments),
            "checksum_algo": self.checksum_algo,
            "chunk_size": self.chunk_size,
            "checksums": [list(c) for c in self.checksums],
            "encryption": encryption,
        }

    def header_bytes(self) -> bytes:
        """The JSON header as written (and authenticated)."""
        return _HEADER_JSON.encode(self.fields()).encode("ascii")

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        """Validate a decoded header (raises MessageFileError)."""
        if not isinstance(data, dict):
            raise MessageFileError("header is not a JSON object")
        sender = data.get("sender")
        claimed = sender if isinstance(sender, str) else None

        def bad(reason: str) -> MessageFileError:
            return MessageFileError(reason, sender=claimed)

        if data.keys() != _HEADER_KEYS:
            missing, extra = _HEADER_KEYS - data.keys(), data.keys() - _HEADER_KEYS
            raise bad(
                f"header fields are wrong (missing {sorted(missing)}, unknown {sorted(extra)})"
            )
        for name in ("sender", "recipient"):
            try:
                validate_email(data[name])
            except ValueError:
                raise bad(f"header {name} {data[name]!r:.80} is not an email") from None
        try:
            validate_name(data["app_name"], "app name")
        except ValueError:
            raise bad(f"header app_name {data['app_name']!r:.80} is invalid") from None
        message_id, kind, reply_to = data["message_id"], data["kind"], data["reply_to"]
        if not is_message_id(message_id):
            raise bad(f"header message_id {message_id!r:.80} is invalid")
        if kind not in _KINDS:
            raise bad(f"header kind {kind!r:.80} is not one of {_KINDS}")
        if reply_to != "" and not is_message_id(reply_to):
            raise bad(f"header reply_to {reply_to!r:.80} is invalid")
        created_at = data["created_at"]
        if (
            not isinstance(created_at, (int, float))
            or isinstance(created_at, bool)
            or not math.isfinite(created_at)
        ):
            raise bad(f"header created_at {created_at!r:.80} is not a timestamp")
        segments, checksums = data["segments"], data["checksums"]
        if not isinstance(segments, list) or not all(type(n) is int and n >= 0 for n in segments):
            raise bad("header segments must be a list of byte counts")
        chunk = data["chunk_size"]
        if type(chunk) is not int or not _MIN_CHUNK <= chunk <= _MAX_CHUNK:
            raise bad(f"header chunk_size {chunk!r:.80} is out of range")
        algo, encryption = data["checksum_algo"], data["encryption"]
        salt: str | None = None
        if encryption is None:
            if not isinstance(algo, str) or algo not in CHECKSUMS:
                raise bad(
                    f"checksum algorithm {algo!r:.80} is not supported for a plain body "
                    f"(this version reads {sorted(CHECKSUMS)})"
                )
            digest = len(CHECKSUMS[algo](b""))
            ok = isinstance(checksums, list) and len(checksums) == len(segments)
            ok = ok and all(
                isinstance(c, list)
                and len(c) == _chunk_count(n, chunk)
                and all(_is_hex(d, digest) for d in c)
                for c, n in zip(checksums, segments, strict=False)
            )
            if not ok:
                raise bad(
                    "header checksums must list, per segment, one checksum per chunk_size bytes"
                )
        else:
            if (
                not isinstance(encryption, dict)
                or encryption.keys() != _ENCRYPTION_KEYS
                or encryption["alg"] != CIPHER
                or _b64decode(encryption["salt"], SALT_BYTES) is None
            ):
                raise bad(
                    f"header encryption {encryption!r:.120} is not supported (this version "
                    f"reads {{'alg': {CIPHER!r}, 'salt': <{SALT_BYTES} bytes, base64>}})"
                )
            if algo != GCM:
                raise bad(f"an encrypted body has checksum_algo {GCM!r}, not {algo!r:.80}")
            ok = isinstance(checksums, list) and len(checksums) == len(segments)
            ok = ok and all(n >= TAG_BYTES for n in segments)
            ok = ok and all(
                isinstance(c, list) and len(c) == 1 and _is_hex(c[0], 2 * TAG_BYTES)
                for c in checksums
            )
            if not ok:
                raise bad("header checksums of an encrypted body must be one GCM tag per segment")
            salt = encryption["salt"]
        if kind == KIND_MESSAGE and not segments:
            raise bad("a message file must carry at least one segment")
        if kind == KIND_STOP and segments:
            raise bad("a stop file carries no body")
        return cls(
            sender=sender,
            recipient=data["recipient"],
            app_name=data["app_name"],
            message_id=message_id,
            kind=kind,
            reply_to=reply_to,
            created_at=float(created_at),
            segments=tuple(segments),
            checksum_algo=algo,
            chunk_size=chunk,
            checksums=tuple(map(tuple, checksums)),
            encryption_salt=salt,
        )


_HEADER_FIELDS = tuple(Envelope(sender="", recipient="", app_name="", message_id="").fields())
_HEADER_KEYS = frozenset(_HEADER_FIELDS)
_ENCRYPTION_KEYS = frozenset({"alg", "salt"})


@dataclass
class EncodedMessage:
    """A message ready to be written: ``buffers`` concatenated are the file's bytes."""

    envelope: Envelope
    buffers: list[bytes | memoryview]
    #: the sender's MAC of the header
    mac: bytes

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.buffers)

    def to_bytes(self) -> bytes:
        return b"".join(self.buffers)


# -- the Flower message <-> segments -----------------------------------------------------------
def split_message(message: Message) -> tuple[bytes, list[bytes]]:
    """Serialize ``message`` with flwr's serde, every Array's bytes detached and returned
    separately (in content order). ``message`` itself is not modified."""
    payloads: list[bytes] = []
    skeleton = message
    # (not ``content.array_records``: flwr builds it as a reference cycle that keeps the
    # whole content, e.g. 100 MB of arrays, alive until the next garbage collection)
    if message.has_content() and any(isinstance(r, ArrayRecord) for r in message.content.values()):
        content = RecordDict()
        for key, record in message.content.items():
            if isinstance(record, ArrayRecord):
                detached = ArrayRecord()
                for name, array in record.items():
                    payloads.append(array.data)
                    detached[name] = Array(
                        dtype=array.dtype,
                        shape=tuple(int(n) for n in array.shape),
                        stype=array.stype,
                        data=b"",
                    )
                content[key] = detached
            else:
                content[key] = record
        skeleton = flwr_compat.make_message(message.metadata, content=content)
    return flwr_compat.message_to_bytes(skeleton), payloads


def join_message(skeleton: bytes | memoryview, payloads: list[bytes]) -> Message:
    """Inverse of :func:`split_message` (raises MessageFileError on any inconsistency)."""
    try:
        message = flwr_compat.message_from_bytes(skeleton)
    except Exception as exc:  # protobuf DecodeError, flwr validation errors
        raise MessageFileError(
            f"could not decode the Flower message: {type(exc).__name__}: {exc}"
        ) from None
    arrays: list[Array] = []
    if message.has_content():
        for record in message.content.values():
            if isinstance(record, ArrayRecord):
                arrays.extend(record.values())
    if len(arrays) != len(payloads):
        raise MessageFileError(
            f"the message has {len(arrays)} arrays but the file carries {len(payloads)} "
            "array payloads"
        )
    for array, data in zip(arrays, payloads, strict=True):
        if array.data:
            raise MessageFileError("an array carries inline data; expected it detached")
        array.data = data
    return message


# -- writing -----------------------------------------------------------------------------------
#: (algorithm, chunk size, id of an immutable bytes object) -> (the object, its checksums).
#: Holding the object keeps its id from being reused while the cache lives.
ChecksumCache = dict[tuple[str, int, int], tuple[bytes, tuple[str, ...]]]


def _chunk_count(length: int, chunk: int) -> int:
    return max(1, -(-length // chunk))


def chunk_checksums(algo: str, buf: bytes | memoryview, chunk: int = CHUNK_SIZE) -> tuple[str, ...]:
    """Checksums of ``buf``'s ``chunk``-byte pieces, computed on several threads when there
    are several pieces (zlib/hashlib release the GIL while hashing)."""
    fn = CHECKSUMS[algo]
    if len(buf) <= chunk:
        return (fn(buf),)
    view = memoryview(buf)
    pieces = [view[i : i + chunk] for i in range(0, len(view), chunk)]
    with ThreadPoolExecutor(min(_HASH_THREADS, len(pieces))) as pool:
        return tuple(pool.map(fn, pieces))


def _checksums(
    algo: str, buf: bytes | memoryview, chunk: int, cache: ChecksumCache | None
) -> tuple[str, ...]:
    """:func:`chunk_checksums`, remembered in ``cache`` so bytes sent to several datasites or
    sent back unchanged are hashed once."""
    if cache is None or not isinstance(buf, bytes):
        return chunk_checksums(algo, buf, chunk)
    hit = cache.get((algo, chunk, id(buf)))
    if hit is not None and hit[0] is buf:
        return hit[1]
    digests = chunk_checksums(algo, buf, chunk)
    cache[(algo, chunk, id(buf))] = (buf, digests)
    return digests


def encode_message(
    message: Message,
    *,
    sender: str,
    recipient: str,
    app_name: str,
    max_bytes: int,
    keys: MessageKeys,
    encrypt: bool,
    checksum_algo: str = DEFAULT_CHECKSUM,
    checksum_cache: ChecksumCache | None = None,
    scratch: Scratch | None = None,
    created_at: float | None = None,
) -> EncodedMessage:
    """Encode and authenticate a Flower message whose ``metadata.message_id`` is set.

    ``keys`` are the sender's. With ``encrypt`` the body is encrypted to ``recipient`` (its
    published keys must exist). With a ``scratch`` buffer, a large encrypted body is written
    into it: write the result before encoding the next message with the same buffer.
    """
    skeleton, payloads = split_message(message)
    segments: list[bytes | memoryview] = [skeleton, *payloads]
    body = sum(len(s) for s in segments)
    if body > max_bytes:
        raise ValueError(
            f"the message to {recipient} is {body / 2**20:.1f} MiB, larger than the limit of "
            f"{max_bytes / 2**20:.1f} MiB: send smaller arrays, or raise the limit "
            "(max_message_bytes / $SYFT_FLWR_MAX_MESSAGE_BYTES) on every party"
        )
    message_id = message.metadata.message_id
    reply_to = message.metadata.reply_to_message_id
    created_at = time.time() if created_at is None else created_at
    salt_b64: str | None = None
    if encrypt:
        salt = keys.new_salt()
        cipher = keys.body_cipher(
            sender=sender, recipient=recipient, message_id=message_id, salt=salt
        )
        total = body + TAG_BYTES * len(segments)
        out = scratch.get(total) if scratch is not None and total >= SCRATCH_MIN_BYTES else None
        sealed: list[bytes | memoryview] = []
        offset = 0
        for index, segment in enumerate(segments):
            nonce, aad = segment_nonce(index), segment_aad(message_id, index)
            if out is not None and _ENCRYPT_INTO:
                view = out[offset : offset + len(segment) + TAG_BYTES]
                cipher.encrypt_into(nonce, segment, aad, view)
                offset += len(view)
            else:
                view = cipher.encrypt(nonce, segment, aad)
            sealed.append(view)
        segments = sealed
        checksum_algo = GCM
        checksums = tuple((bytes(s[-TAG_BYTES:]).hex(),) for s in sealed)
        salt_b64 = base64.b64encode(salt).decode("ascii")
    else:
        if checksum_algo not in CHECKSUMS:
            raise ValueError(f"checksum_algo must be one of {sorted(CHECKSUMS)}")
        checksums = tuple(
            _checksums(checksum_algo, s, CHUNK_SIZE, checksum_cache) for s in segments
        )
    envelope = Envelope(
        sender=sender,
        recipient=recipient,
        app_name=app_name,
        message_id=message_id,
        kind=KIND_MESSAGE,
        reply_to=reply_to,
        created_at=created_at,
        segments=tuple(len(s) for s in segments),
        checksum_algo=checksum_algo,
        chunk_size=CHUNK_SIZE,
        checksums=checksums,
        encryption_salt=salt_b64,
    )
    return _authenticated(envelope, keys, segments)


def encode_stop(
    *,
    sender: str,
    recipient: str,
    app_name: str,
    keys: MessageKeys,
    created_at: float | None = None,
) -> EncodedMessage:
    envelope = Envelope(
        sender=sender,
        recipient=recipient,
        app_name=app_name,
        message_id=new_message_id(),
        kind=KIND_STOP,
        created_at=time.time() if created_at is None else created_at,
    )
    return _authenticated(envelope, keys, [])


def _authenticated(
    envelope: Envelope, keys: MessageKeys, segments: list[bytes | memoryview]
) -> EncodedMessage:
    """The file of ``envelope`` and ``segments``: its header serialized once, its MAC over
    exactly those bytes."""
    header = envelope.header_bytes()
    mac = keys.mac(sender=envelope.sender, recipient=envelope.recipient, data=header)
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), zlib.crc32(header))
    return EncodedMessage(envelope, [prefix + header + mac, *segments], mac)


# -- reading -----------------------------------------------------------------------------------
def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise IncompleteMessageError(f"truncated: the {what} ends after {len(data)} of {n} bytes")
    return data


def _read_into(f: BinaryIO, view: memoryview, what: str) -> None:
    filled = 0
    while filled < len(view):
        got = f.readinto(view[filled:])
        if not got:
            raise IncompleteMessageError(
                f"truncated: the {what} ends after {filled} of {len(view)} bytes"
            )
        filled += got


def read_envelope(
    f: BinaryIO,
    file_name: str,
    *,
    recipient: str,
    app_name: str,
    senders: Collection[str],
    max_bytes: int,
    keys: MessageKeys,
) -> Envelope:
    """Read and validate the prefix and header of an open message file.

    Checks the magic, the format version, the sizes against ``max_bytes`` and the file's
    actual size, the header checksum, the header fields, that the file is addressed to
    ``recipient`` for ``app_name`` by one of ``senders``, that it is named after its message
    id, and that its sender wrote it (its MAC; ``keys`` looks up the sender's published key).
    Leaves ``f`` at the start of the body. Freshness is :func:`check_freshness`'s job.
    """
    size = os.fstat(f.fileno()).st_size
    if size < PREFIX_SIZE:
        raise IncompleteMessageError(
            f"truncated: {size} bytes, shorter than the {PREFIX_SIZE}-byte prefix"
        )
    magic, version, header_len, header_crc = _PREFIX.unpack(_read_exact(f, PREFIX_SIZE, "prefix"))
    if magic != MAGIC:
        raise MessageFileError("not a syft_flwr message file (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise MessageFileError(
            f"message format version {version} is not supported (this version of syft_flwr "
            f"reads version {FORMAT_VERSION}); use the same syft_flwr version on every party"
        )
    if header_len > MAX_HEADER_BYTES:
        raise MessageFileError(f"header of {header_len} bytes exceeds {MAX_HEADER_BYTES} bytes")
    # an encrypted segment adds a 16-byte tag to the body and more than that to the header
    if size > PREFIX_SIZE + 2 * header_len + MAC_BYTES + max_bytes:
        raise MessageFileError(
            f"too large: the file has {size} bytes, over the limit of {max_bytes} bytes for a "
            "message body (max_message_bytes / $SYFT_FLWR_MAX_MESSAGE_BYTES)",
            kind="too-large",
        )
    header = _read_exact(f, header_len, "header")
    mac = _read_exact(f, MAC_BYTES, "MAC")
    if zlib.crc32(header) != header_crc:
        raise MessageFileError("header checksum mismatch (the header is corrupted)")
    try:
        data = json.loads(header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MessageFileError(f"header is not valid JSON: {exc}") from None
    envelope = Envelope.from_json(data)
    claimed = envelope.sender
    if envelope.payload_length > max_bytes:
        raise MessageFileError(
            f"too large: the body announces {envelope.payload_length} bytes, over the limit of "
            f"{max_bytes} bytes (max_message_bytes / $SYFT_FLWR_MAX_MESSAGE_BYTES)",
            kind="too-large",
            sender=claimed,
        )
    expected_size = PREFIX_SIZE + header_len + MAC_BYTES + envelope.body_length
    if size < expected_size:
        raise IncompleteMessageError(
            f"truncated: the file has {size} bytes, the header announces {expected_size}",
            sender=claimed,
        )
    if size > expected_size:
        raise MessageFileError(
            f"{size - expected_size} unexpected bytes after the body announced by the header",
            sender=claimed,
        )
    if envelope.recipient != recipient:
        raise MessageFileError(
            f"addressed to {envelope.recipient}, not to {recipient}",
            kind="wrong-recipient",
            sender=claimed,
        )
    if envelope.app_name != app_name:
        raise MessageFileError(
            f"a message for app {envelope.app_name!r}, not {app_name!r}",
            kind="wrong-app",
            sender=claimed,
        )
    if envelope.sender not in senders:
        raise MessageFileError(
            f"sender {envelope.sender} is not a party of this app that may write here "
            f"(expected one of {sorted(senders)})",
            kind="wrong-sender",
            sender=claimed,
        )
    if file_name != envelope.file_name:
        raise MessageFileError(f"file name {file_name!r} does not match message id", sender=claimed)
    if mac == NO_MAC:
        raise MessageFileError(
            f"unauthenticated: the file claims to come from {claimed} but carries no MAC",
            kind="unauthenticated",
            sender=claimed,
        )
    # the bytes read, exactly as the sender wrote and authenticated them
    try:
        keys.check_mac(sender=claimed, recipient=recipient, data=header, mac=mac)
    except MessageAuthError as exc:
        raise MessageFileError(exc.reason, kind="bad-mac", sender=exc.sender) from None
    return envelope


def check_freshness(envelope: Envelope, *, ttl: float, now: float | None = None) -> None:
    """Refuse a file written more than ``ttl`` seconds ago, or dated in the future."""
    age = (time.time() if now is None else now) - envelope.created_at
    if age > ttl:
        raise MessageFileError(
            f"expired: written {age:.0f} s ago, over the message TTL of {ttl:g} s (a replayed or "
            "left-over file; the TTL is message_ttl / $SYFT_FLWR_MESSAGE_TTL)",
            kind="expired",
            sender=envelope.sender,
        )
    if -age > MAX_CLOCK_SKEW:
        raise MessageFileError(
            f"dated {-age:.0f} s in the future (more than the {MAX_CLOCK_SKEW:g} s of clock "
            "difference allowed between parties)",
            kind="future",
            sender=envelope.sender,
        )


def read_segments(
    f: BinaryIO,
    envelope: Envelope,
    *,
    keys: MessageKeys,
    checksum_cache: ChecksumCache | None = None,
    scratch: Scratch | None = None,
) -> list[bytes]:
    """Read the body segments that follow the header; verify their checksums, or decrypt
    them (``keys`` are the recipient's).

    Verified checksums go into ``checksum_cache``: a reply that sends the same bytes back
    (an unchanged layer, an echo) is not hashed again.
    """
    if envelope.encrypted:
        return _read_encrypted(f, envelope, keys, scratch)
    algo, chunk = envelope.checksum_algo, envelope.chunk_size
    segments: list[bytes] = []
    for index, (length, expected) in enumerate(
        zip(envelope.segments, envelope.checksums, strict=True)
    ):
        data = _read_exact(f, length, f"body segment {index}")
        actual = chunk_checksums(algo, data, chunk)
        if actual != expected:
            bad = next(i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if a != e)
            raise MessageFileError(
                f"body checksum mismatch in segment {index}, bytes {bad * chunk}-"
                f"{min(length, (bad + 1) * chunk)} (the file was altered or damaged after it "
                "was written)",
                kind="corrupted",
                sender=envelope.sender,
            )
        if checksum_cache is not None:
            checksum_cache[(algo, chunk, id(data))] = (data, expected)
        segments.append(data)
    return segments


def _read_encrypted(
    f: BinaryIO, envelope: Envelope, keys: MessageKeys, scratch: Scratch | None
) -> list[bytes]:
    assert envelope.encryption_salt is not None
    try:
        cipher = keys.body_cipher(
            sender=envelope.sender,
            recipient=envelope.recipient,
            message_id=envelope.message_id,
            salt=base64.b64decode(envelope.encryption_salt),
        )
    except (PublicKeysNotFoundError, PublicKeysInvalidError) as exc:
        raise MessageFileError(
            f"cannot decrypt: {exc}", kind="bad-mac", sender=envelope.sender
        ) from None
    segments: list[bytes] = []
    try:
        for index, (length, (tag,)) in enumerate(
            zip(envelope.segments, envelope.checksums, strict=True)
        ):
            what = f"body segment {index}"
            if scratch is not None and length >= SCRATCH_MIN_BYTES:
                data: bytes | memoryview = scratch.get(length)
                _read_into(f, data, what)
            else:
                data = _read_exact(f, length, what)
            if bytes(data[-TAG_BYTES:]).hex() != tag:
                raise MessageFileError(
                    f"body tag mismatch in segment {index} (the file was altered or damaged "
                    "after it was written)",
                    kind="corrupted",
                    sender=envelope.sender,
                )
            try:
                plain = cipher.decrypt(
                    segment_nonce(index), data, segment_aad(envelope.message_id, index)
                )
            except InvalidTag:
                raise MessageFileError(
                    f"body segment {index} does not decrypt with {envelope.recipient}'s key: it "
                    "was altered after it was written, or encrypted for another key",
                    kind="corrupted",
                    sender=envelope.sender,
                ) from None
            del data
            segments.append(plain)
    finally:
        if scratch is not None:
            scratch.done()
    return segments


def decode_message(envelope: Envelope, segments: list[bytes]) -> Message:
    """Build the Flower message of a validated file and check it matches its header."""
    message = join_message(segments[0], segments[1:])
    metadata = message.metadata
    if metadata.message_id != envelope.message_id:
        raise MessageFileError(
            "the message id inside the message does not match the header",
            sender=envelope.sender,
        )
    if metadata.reply_to_message_id != envelope.reply_to:
        raise MessageFileError(
            "reply_to inside the message does not match the header", sender=envelope.sender
        )
    return message


def read_message_file(
    path: Path,
    *,
    recipient: str,
    app_name: str,
    senders: Collection[str],
    max_bytes: int,
    keys: MessageKeys,
    ttl: float | None = None,
) -> tuple[Envelope, Message | None]:
    """Validate and decode one file: ``(envelope, message)`` (``message`` is None for a stop
    file). Raises MessageFileError for any file it refuses, FileNotFoundError if it is gone."""
    path = Path(path)
    with open(path, "rb") as f:
        envelope = read_envelope(
            f,
            path.name,
            recipient=recipient,
            app_name=app_name,
            senders=senders,
            max_bytes=max_bytes,
            keys=keys,
        )
        if ttl is not None:
            check_freshness(envelope, ttl=ttl)
        if envelope.kind == KIND_STOP:
            return envelope, None
        segments = read_segments(f, envelope, keys=keys)
    return envelope, decode_message(envelope, segments)
