"""Creating a party: its identity file and its keys, in one call."""

from __future__ import annotations

from syft_flwr.config import Identity
from syft_flwr.crypto.keystore import ensure_keys
from syft_flwr.network.layout import Network, validate_email


def create_party(network: Network, email: str, *, durable: bool = True) -> Identity:
    """Give ``email`` its keys on ``network`` (kept if it has them) and write its identity file.

    The Ed25519 (signing) and X25519 (encryption) private keys are created if missing and their
    public halves published (see :func:`~syft_flwr.crypto.keystore.ensure_keys`); the identity
    file is written last, so an identity on disk always has keys beside it. ``durable=False``
    skips flushing the files to disk (a throwaway network, e.g. a simulation's: two fsyncs
    per key cost more than making it).
    """
    validate_email(email)
    ensure_keys(network, email, durable=durable)
    return Identity.write(network, email, durable=durable)
