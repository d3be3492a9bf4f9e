"""Defaults of the transport and the environment variables that override them."""

from __future__ import annotations

import gc
import os
import threading
from dataclasses import dataclass, replace

MSG_TIMEOUT_ENV = "SYFT_FLWR_MSG_TIMEOUT"
DEFAULT_MSG_TIMEOUT = 120.0
IDLE_TIMEOUT_ENV = "SYFT_FLWR_IDLE_TIMEOUT"
DEFAULT_IDLE_TIMEOUT = 600.0
MAX_MESSAGE_BYTES_ENV = "SYFT_FLWR_MAX_MESSAGE_BYTES"
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
MESSAGE_TTL_ENV = "SYFT_FLWR_MESSAGE_TTL"
#: a message file whose header says it was written longer ago than this is refused (a replay
#: or a leftover); keep it above the aggregator's reply timeout
DEFAULT_MESSAGE_TTL = 600.0
#: a message file dated further in the future than this is refused (clocks of the parties
#: may differ a little; more than this is a forged or broken timestamp)
MAX_CLOCK_SKEW = 60.0
ENCRYPT_ENV = "SYFT_FLWR_ENCRYPT"
#: syft-flwr 0.5's name for the same switch ("false" turns encryption off), read when
#: ``SYFT_FLWR_ENCRYPT`` is not set
LEGACY_ENCRYPT_ENV = "SYFT_FLWR_ENCRYPTION_ENABLED"
#: message bodies are encrypted to the recipient unless turned off (``encrypt=False`` or
#: ``SYFT_FLWR_ENCRYPT=0``): with AES-GCM in place of the body checksums it costs about as
#: much as the unencrypted, signed format (see benchmarks/transport.py)
DEFAULT_ENCRYPT = True
#: how often a watched inbox is scanned where file events are not available (polling)
POLL_INTERVAL = 0.1
INCOMPLETE_GRACE_ENV = "SYFT_FLWR_INCOMPLETE_GRACE"
#: over a file sync (SyftBox) a message file shorter than its header says is left in place
#: this long (a sync may still be writing it) before it is refused; on one local folder,
#: where every file is renamed into place whole, it is refused at once
DEFAULT_SYNC_INCOMPLETE_GRACE = 30.0
#: SyftBox 0.4.0 clients neither upload nor download a file over 10 MiB
SYNC_MAX_FILE_BYTES = 10 * 1024 * 1024
#: how often such a file is looked at again meanwhile (besides each new event for it)
INCOMPLETE_RETRY = 0.5


def incomplete_grace(synced: bool) -> float:
    """Seconds an incomplete message file may wait: ``$SYFT_FLWR_INCOMPLETE_GRACE``, else
    :data:`DEFAULT_SYNC_INCOMPLETE_GRACE` over a sync and 0 on a local folder."""
    raw = os.environ.get(INCOMPLETE_GRACE_ENV, "").strip()
    if not raw:
        return DEFAULT_SYNC_INCOMPLETE_GRACE if synced else 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{INCOMPLETE_GRACE_ENV}={raw!r} is not a number: set it in seconds, e.g. 30"
        ) from None
    return max(0.0, value)


def resolve_seconds(value: float | None, env: str, default: float, what: str) -> float:
    """``value`` if given, else ``$env``, else ``default``; a positive number of seconds."""
    source = "argument"
    if value is None:
        raw = os.environ.get(env, "").strip()
        if not raw:
            return default
        source = f"${env}"
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"{env}={raw!r} is not a number: set it to the {what} in seconds, e.g. 120"
            ) from None
    if not value > 0:
        raise ValueError(f"the {what} ({source}) must be a positive number of seconds, got {value}")
    return float(value)


def resolve_max_bytes(value: int | None) -> int:
    """The largest message body accepted/sent: ``value``, ``$SYFT_FLWR_MAX_MESSAGE_BYTES``
    or 512 MiB."""
    source = "max_message_bytes"
    if value is None:
        raw = os.environ.get(MAX_MESSAGE_BYTES_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_MESSAGE_BYTES
        source = f"${MAX_MESSAGE_BYTES_ENV}"
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(
                f"{MAX_MESSAGE_BYTES_ENV}={raw!r} is not an integer number of bytes, "
                "e.g. 536870912 for 512 MiB"
            ) from None
    if value <= 0:
        raise ValueError(f"{source} must be a positive number of bytes, got {value}")
    return int(value)


#: Garbage collection after large exchanges. flwr's record views (``content.array_records``
#: and co., which strategies and apps use) are reference cycles: without a collection they
#: keep whole messages (one model per datasite per round) alive until Python's next full
#: collection. After this many bytes have gone through, a node collects as soon as its inbox
#: is quiet for ``QUIET_BEFORE_COLLECT`` seconds (at once past ``COLLECT_NOW_BYTES``), and a
#: grid collects while the datasites work on its next exchange. A full collection costs
#: ~15 ms, so it is only worth it after this much data.
COLLECT_AFTER_BYTES = 256 * 1024 * 1024
COLLECT_NOW_BYTES = 1024 * 1024 * 1024
QUIET_BEFORE_COLLECT = 0.05
_COLLECTING = threading.Lock()


def collect_garbage() -> None:
    """A full garbage collection, one thread at a time. CPython's ``gc.collect()`` does
    nothing while another thread's collection is running (its finalizers may let other
    threads run), so a grid and a node in one process (a simulation) would otherwise skip
    each other's collections and keep large replies alive."""
    with _COLLECTING:
        gc.collect()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def resolve_flag(value: bool | None, env: str, default: bool, what: str) -> bool:
    """``value`` if given, else ``$env`` (1/0, true/false, yes/no, on/off), else ``default``."""
    if value is not None:
        return bool(value)
    raw = os.environ.get(env, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{env}={raw!r} is not understood: set it to 1 or 0 to turn {what} on or off")


def _encrypt_env() -> str:
    """``SYFT_FLWR_ENCRYPT``, or syft-flwr 0.5's ``SYFT_FLWR_ENCRYPTION_ENABLED`` when only
    that one is set."""
    if os.environ.get(ENCRYPT_ENV, "").strip() or not os.environ.get(LEGACY_ENCRYPT_ENV):
        return ENCRYPT_ENV
    return LEGACY_ENCRYPT_ENV


@dataclass(frozen=True)
class TransportSettings:
    """What a party's message files obey, read once from the environment (or given).

    ``msg_timeout``: the aggregator's wait for replies; ``idle_timeout``: a datasite stops
    after this long without a message; ``max_message_bytes``: the largest body sent or
    accepted; ``message_ttl``: a file written longer ago is refused; ``encrypt``: bodies are
    encrypted to the recipient.
    """

    msg_timeout: float = DEFAULT_MSG_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    message_ttl: float = DEFAULT_MESSAGE_TTL
    encrypt: bool = DEFAULT_ENCRYPT

    @classmethod
    def from_env(
        cls,
        *,
        msg_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_message_bytes: int | None = None,
        message_ttl: float | None = None,
        encrypt: bool | None = None,
    ) -> TransportSettings:
        """The settings from ``$SYFT_FLWR_*`` (or the defaults); a keyword given wins.
        Raises ValueError, naming the variable, for a value that makes no sense."""
        given = {
            "msg_timeout": msg_timeout,
            "idle_timeout": idle_timeout,
            "max_message_bytes": max_message_bytes,
            "message_ttl": message_ttl,
            "encrypt": encrypt,
        }
        return cls(**{name: _RESOLVE[name](value) for name, value in given.items()})

    def but(self, **changes: object) -> TransportSettings:
        """A copy with the given (non-None) fields changed, each checked as from_env does
        (the environment is not read again)."""
        given = {k: _RESOLVE[k](v) for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self


#: each setting: its value if given (checked), else its environment variable, else its default
_RESOLVE = {
    "msg_timeout": lambda v: resolve_seconds(v, MSG_TIMEOUT_ENV, DEFAULT_MSG_TIMEOUT, "timeout"),
    "idle_timeout": lambda v: resolve_seconds(
        v, IDLE_TIMEOUT_ENV, DEFAULT_IDLE_TIMEOUT, "idle timeout"
    ),
    "max_message_bytes": resolve_max_bytes,
    "message_ttl": lambda v: resolve_seconds(
        v, MESSAGE_TTL_ENV, DEFAULT_MESSAGE_TTL, "message TTL"
    ),
    "encrypt": lambda v: resolve_flag(v, _encrypt_env(), DEFAULT_ENCRYPT, "message encryption"),
}
