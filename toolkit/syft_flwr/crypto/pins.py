"""Pinned public keys: each party trusts another party's keys as first seen (TOFU).

The first time ``reader`` uses ``peer``'s published ``keys.json`` (to check a signature or a
MAC, or to encrypt to it) the keys are copied into ``private/<reader>/trust/keys/<peer>.json``.
From then on a ``keys.json`` that holds other keys is refused with :class:`KeyChangedError`,
whose message says how to accept a rotation made on purpose: compare the fingerprints
(:func:`key_fingerprints`) with the peer out of band, then :func:`accept_key` (or
``syft-flwr keys accept PEER``).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syft_flwr.crypto.errors import PublicKeysInvalidError, PublicKeysNotFoundError
from syft_flwr.crypto.keystore import PublicKeys, b64, public_keys
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network, validate_email
from syft_flwr.network.safe_read import read_regular

#: (network root, reader, peer) -> the PublicKeys object last found to match the pin (the
#: keystore returns the same object until keys.json changes, so a match is checked once)
_checked: dict[tuple[Path, str, str], PublicKeys] = {}
_lock = threading.Lock()


class KeyChangedError(PublicKeysInvalidError):
    """A peer's published keys are not the ones pinned at first contact."""


def _pin_of(keys: PublicKeys) -> dict[str, Any]:
    return {
        "email": keys.email,
        "ed25519": b64(keys.ed25519_bytes),
        "x25519": b64(keys.x25519_bytes),
        "fingerprint": keys.long_fingerprint,
        "pinned_at": datetime.now(UTC).isoformat(),
    }


def read_pin(network: Network, reader: str, peer: str) -> dict[str, Any] | None:
    """What ``reader`` pinned for ``peer`` (None if nothing yet)."""
    try:
        data = json.loads(read_regular(network.pinned_key_path(reader, peer), "keys"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def trusted_keys(network: Network, peer: str, reader: str | None) -> PublicKeys:
    """``peer``'s published keys, checked against ``reader``'s pin (pinned if first contact).

    ``reader`` None (a tool with no identity) or ``reader == peer`` skips the pin. Raises
    KeyChangedError (a PublicKeysInvalidError) if the keys differ from the pin, and what
    :func:`~syft_flwr.crypto.keystore.public_keys` raises.
    """
    published = public_keys(network, peer)
    if reader is None or reader == peer:
        return published
    key = (network.root, reader, peer)
    if _checked.get(key) is published:
        return published
    pin = read_pin(network, reader, peer)
    if pin is None:
        atomic_write_json(network.pinned_key_path(reader, peer), _pin_of(published), durable=False)
    elif (pin.get("ed25519"), pin.get("x25519")) != (
        b64(published.ed25519_bytes),
        b64(published.x25519_bytes),
    ):
        raise KeyChangedError(
            f"the published keys of {peer} changed since {reader} first met it (pinned "
            f"fingerprint {pin.get('fingerprint')}, published now {published.long_fingerprint}"
            f"): refused. If {peer} rotated its keys on purpose, compare the new fingerprint "
            f"with {peer} by another channel, then accept it with `syft-flwr keys accept {peer} "
            f"--as {reader}` or syft_flwr.crypto.accept_key(network, {reader!r}, {peer!r})"
        )
    with _lock:
        _checked[key] = published
    return published


def accept_key(network: Network, reader: str, peer: str) -> PublicKeys:
    """Pin ``peer``'s keys as published now (a rotation ``reader`` checked out of band)."""
    validate_email(reader)
    published = public_keys(network, peer)
    atomic_write_json(network.pinned_key_path(reader, peer), _pin_of(published))
    with _lock:
        _checked[(network.root, reader, peer)] = published
    return published


def key_fingerprints(
    network: Network, reader: str, peers: list[str] | None = None
) -> list[dict[str, Any]]:
    """For each peer (default: every datasite but ``reader``): the pinned and the published
    fingerprint and whether they match, to compare with the peers out of band."""
    peers = [p for p in network.datasite_emails() if p != reader] if peers is None else peers
    rows = []
    for peer in peers:
        pin = read_pin(network, reader, peer)
        try:
            published: str | None = public_keys(network, peer).long_fingerprint
        except (PublicKeysNotFoundError, PublicKeysInvalidError):
            published = None
        pinned = pin.get("fingerprint") if pin else None
        rows.append(
            {
                "peer": peer,
                "pinned": pinned,
                "published": published,
                "state": "not pinned yet"
                if pinned is None
                else ("ok" if pinned == published else "CHANGED"),
            }
        )
    return rows


def show_fingerprints(network: Network, reader: str, peers: list[str] | None = None) -> str:
    """Print (and return) :func:`key_fingerprints` as a table (for a notebook)."""
    lines = [f"key fingerprints as seen by {reader} (compare them with each party):"]
    for row in key_fingerprints(network, reader, peers):
        lines.append(
            f"  {row['peer']:<32} {row['state']:<15} published {row['published'] or '-'}"
            + (f"  pinned {row['pinned']}" if row["state"] == "CHANGED" else "")
        )
    text = "\n".join(lines)
    print(text)
    return text


def forget_checked() -> None:
    """Forget which pins were checked in this process (the next use reads them again)."""
    with _lock:
        _checked.clear()
