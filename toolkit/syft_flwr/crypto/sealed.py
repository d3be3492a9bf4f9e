"""Sealed bodies: encrypt for one recipient's X25519 key.

Ephemeral X25519 + HKDF-SHA256 + ChaCha20-Poly1305, like a libsodium sealed box: the sender is
anonymous, so sign what you seal when the recipient must know who sent it. Layout:
``b"SFS1" + ephemeral public key (32) + nonce (12) + ciphertext and tag``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syft_flwr.crypto.errors import DecryptionError
from syft_flwr.crypto.keystore import KeyOwner, load_encryption_key, public_keys, raw_public
from syft_flwr.network.layout import Network

SEAL_MAGIC = b"SFS1"
_SEAL_INFO = b"syft_flwr seal v1"
_NONCE_BYTES = 12


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SEAL_INFO)
    return hkdf.derive(shared + ephemeral + recipient)


def seal(
    network: Network, recipient: str, plaintext: bytes, *, associated_data: bytes = b""
) -> bytes:
    """Encrypt ``plaintext`` so that only ``recipient`` (its X25519 key) can read it.

    ``associated_data`` (e.g. a message id) is authenticated, not encrypted: :func:`unseal`
    must be given the same bytes.
    """
    recipient_key = public_keys(network, recipient).x25519
    ephemeral = X25519PrivateKey.generate()
    eph_pub = raw_public(ephemeral.public_key())
    key = _seal_key(ephemeral.exchange(recipient_key), eph_pub, raw_public(recipient_key))
    nonce = os.urandom(_NONCE_BYTES)
    body = ChaCha20Poly1305(key).encrypt(nonce, bytes(plaintext), associated_data)
    return SEAL_MAGIC + eph_pub + nonce + body


def unseal(owner: KeyOwner, sealed: bytes, *, associated_data: bytes = b"") -> bytes:
    """Open a body :func:`seal` made for ``owner``; DecryptionError if that fails."""
    head = len(SEAL_MAGIC) + 32 + _NONCE_BYTES
    if not isinstance(sealed, bytes | bytearray) or len(sealed) < head + 16:
        raise DecryptionError("not a sealed body: too short")
    if sealed[: len(SEAL_MAGIC)] != SEAL_MAGIC:
        raise DecryptionError("not a sealed body: wrong magic bytes")
    eph_pub = bytes(sealed[len(SEAL_MAGIC) : len(SEAL_MAGIC) + 32])
    nonce = bytes(sealed[len(SEAL_MAGIC) + 32 : head])
    private = load_encryption_key(owner)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as exc:  # an all-zero shared secret: a malicious ephemeral key
        raise DecryptionError(f"not a sealed body: {exc}") from exc
    key = _seal_key(shared, eph_pub, raw_public(private.public_key()))
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, bytes(sealed[head:]), associated_data)
    except InvalidTag:
        raise DecryptionError(
            f"the body was not sealed for {owner.email}, or it was altered"
        ) from None
