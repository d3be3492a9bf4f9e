"""Sequence numbers in signed documents, so an older signed document cannot be replayed.

A signer puts ``seq`` (:func:`next_sequence`, strictly increasing per signer across all its
documents, kept in ``private/<signer>/trust/sequence`` and never below the clock in
microseconds) in every status and results document it signs. A reader remembers the newest
``seq`` it accepted per signer and *topic* (e.g. ``status:<job>``), in its private area
(:class:`SeenSequences`), and refuses an older one with :class:`StaleDocumentError`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from syft_flwr.errors import SyftFlwrError
from syft_flwr.network.atomic import atomic_write_json, atomic_write_text
from syft_flwr.network.files import file_lock
from syft_flwr.network.layout import Network
from syft_flwr.network.safe_read import read_regular

SEQ_FIELD = "seq"
_lock = threading.Lock()
#: (root, reader or None, signer, topic) -> newest seq accepted in this process
_memory: dict[tuple[Any, ...], int] = {}


class StaleDocumentError(SyftFlwrError, ValueError):
    """A signed document carries no sequence number, or an older one than already seen."""


def next_sequence(network: Network, signer: str) -> int:
    """The next sequence number of ``signer``: above every earlier one and the clock (µs)."""
    path = network.sequence_path(signer)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with file_lock(path.with_name(".sequence.lock")):
        try:
            last = int(read_regular(path, 64).decode("ascii").strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        seq = max(last + 1, time.time_ns() // 1000)
        atomic_write_text(path, f"{seq}\n", durable=False)
    return seq


def sequence_of(payload: dict[str, Any], what: str) -> int:
    """The ``seq`` of a verified payload; StaleDocumentError if it has none."""
    seq = payload.get(SEQ_FIELD)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
        raise StaleDocumentError(
            f"{what} carries no sequence number: it was written by an older toolkit or forged; "
            "ask its writer to publish it again"
        )
    return seq


class SeenSequences:
    """The newest sequence number ``reader`` accepted per signer and topic.

    With a ``reader`` the numbers are kept in its private area (they outlive the process);
    without one (a tool with no identity, e.g. ``syft-flwr status``) in this process only.
    """

    def __init__(self, network: Network, reader: str | None):
        self.network = network
        self.reader = reader

    def _load(self, signer: str) -> dict[str, int]:
        assert self.reader is not None
        try:
            path = self.network.seen_sequences_path(self.reader, signer)
            data = json.loads(read_regular(path, "record"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    def check(self, signer: str, topic: str, seq: int, what: str) -> None:
        """Record ``seq`` for (signer, topic); StaleDocumentError if an older one than seen."""
        key = (self.network.root, self.reader, signer, topic)
        with _lock:
            newest = _memory.get(key, 0)
        if seq < newest:
            raise self._stale(signer, seq, newest, what)
        if seq == newest:
            return
        if self.reader is not None:
            path = self.network.seen_sequences_path(self.reader, signer)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with file_lock(path.with_name(f".{path.name}.lock")):
                seen = self._load(signer)
                stored = seen.get(topic, 0)
                if isinstance(stored, int) and seq < stored:
                    with _lock:
                        _memory[key] = max(_memory.get(key, 0), stored)
                    raise self._stale(signer, seq, stored, what)
                seen[topic] = seq
                atomic_write_json(path, seen, durable=False)
        with _lock:
            _memory[key] = max(_memory.get(key, 0), seq)

    @staticmethod
    def _stale(signer: str, seq: int, newest: int, what: str) -> StaleDocumentError:
        return StaleDocumentError(
            f"{what} is an older document of {signer} (sequence {seq}, already saw {newest}): "
            "a replay of something it signed before; refused"
        )


def forget_seen() -> None:
    """Forget the sequence numbers held in this process's memory (tests)."""
    with _lock:
        _memory.clear()


__all__ = [
    "SEQ_FIELD",
    "SeenSequences",
    "StaleDocumentError",
    "forget_seen",
    "next_sequence",
    "sequence_of",
]
