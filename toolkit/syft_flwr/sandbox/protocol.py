"""Frames on the pipe between the trusted node and the sandboxed ClientApp.

A frame is an 8-byte big-endian length and that many bytes. A request is a JSON header
(``run_id``, ``node_id``, ``node_config``, ``run_config``, ``arrays``) and the Flower message:
flwr's protobuf (:func:`~syft_flwr.transport.flwr_compat.message_to_bytes`) with every Array's
bytes detached into frames of their own (``arrays`` of them), as the message files do
(:func:`~syft_flwr.transport.codec.split_message`: flwr's protobuf path is slow for large
arrays). A reply is a JSON header (``error``: the app's exception type and message, or
``fatal``: why the worker must end) and, unless fatal, the reply message. The worker's first
frame says whether the app loaded.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any, BinaryIO

from syft_flwr.sandbox.errors import SandboxError

if TYPE_CHECKING:
    from flwr.app import Message

LENGTH = struct.Struct(">Q")
#: the largest frame either side accepts (a Flower message with its arrays)
MAX_FRAME = 4 * 1024**3


def write_frames(stream: BinaryIO, *parts: bytes) -> None:
    """Write ``parts`` as frames and flush."""
    for part in parts:
        stream.write(LENGTH.pack(len(part)))
        stream.write(part)
    stream.flush()


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's bytes, or None at the end of the stream (the other side is gone)."""
    head = _read_exactly(stream, LENGTH.size)
    if head is None:
        return None
    (size,) = LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise SandboxError(f"a frame of {size} bytes on the sandbox pipe: the stream is corrupt")
    return _read_exactly(stream, size) if size else b""


def dump(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode()


def load(frame: bytes) -> dict[str, Any]:
    header = json.loads(frame)
    if not isinstance(header, dict):
        raise SandboxError("a sandbox frame header is not a JSON object")
    return header


def send(stream: BinaryIO, header: dict[str, Any], message: Message | None = None) -> None:
    """Write ``header`` and, if given, ``message`` (its arrays detached) and flush."""
    if message is None:
        write_frames(stream, dump(header))
        return
    from syft_flwr.transport.codec import split_message  # flwr loads on first use

    skeleton, payloads = split_message(message)
    write_frames(stream, dump({**header, "arrays": len(payloads)}), skeleton, *payloads)


def receive(stream: BinaryIO) -> tuple[dict[str, Any], Message | None] | None:
    """The next header and its message (None if it carries none); None at the end."""
    head = read_frame(stream)
    if head is None:
        return None
    header = load(head)
    if "arrays" not in header:
        return header, None
    from syft_flwr.transport.codec import join_message

    frames = [read_frame(stream) for _ in range(1 + int(header["arrays"]))]
    if any(frame is None for frame in frames):
        return None
    skeleton, *payloads = frames
    return header, join_message(skeleton, payloads)  # type: ignore[arg-type]
