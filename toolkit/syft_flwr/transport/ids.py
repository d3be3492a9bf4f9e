"""Node ids of datasites and ids of message files."""

from __future__ import annotations

import hashlib
import re
import secrets

from syft_flwr.network import validate_email
from syft_flwr.transport.flwr_compat import SUPERLINK_NODE_ID

_MESSAGE_ID = re.compile(r"^[0-9a-f]{32}$")


def node_id_for(email: str) -> int:
    """The Flower node id of a datasite: stable, derived from its email, a positive int64.

    Both sides compute it independently (the grid to address messages, the datasite for its
    Context), so it must never depend on anything but the email.
    """
    digest = hashlib.blake2b(
        validate_email(email).encode("utf-8"), digest_size=8, person=b"syft-flwr-node"
    ).digest()
    node_id = int.from_bytes(digest, "big") & ((1 << 63) - 1)
    if node_id <= SUPERLINK_NODE_ID:  # 0 and flwr's SuperLink id are reserved
        node_id += SUPERLINK_NODE_ID + 1
    return node_id


def new_message_id() -> str:
    """32 random hex digits (``uuid4().hex``'s form, at a quarter of its cost)."""
    return secrets.token_hex(16)


def is_message_id(value: object) -> bool:
    return isinstance(value, str) and bool(_MESSAGE_ID.match(value))
