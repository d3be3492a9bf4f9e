"""Who wrote a message file, and who can read its body.

Every message file is signed by its sender with its Ed25519 key (:mod:`syft_flwr.keys`) over
its header, which holds the body's checksums: a reader checks the signature against the
sender's published key before it reads the body. Bodies may also be encrypted to the
recipient: a key agreed from the sender's and the recipient's X25519 keys (cached per pair),
stretched per message with HKDF-SHA256 over a random salt, the message id and both emails,
encrypts each body segment with AES-256-GCM. GCM's tag then takes the place of the body
checksum (so encryption costs little more than hashing the body would), and a file sync
in between only ever sees ciphertext.

:class:`MessageKeys` is one party's view: its own private keys and the others' public keys.
"""

from __future__ import annotations

import hmac
import os
import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syft_flwr import keys
from syft_flwr.config import Identity
from syft_flwr.network import Network, validate_email
from syft_flwr.transport.errors import MessageFileError

#: what a message signature is made for (see :func:`syft_flwr.keys.signed_raw_bytes`)
SIGNATURE_DOMAIN = "flwr.message.v3"
CIPHER = "x25519-hkdf-sha256-aes-256-gcm"
SALT_BYTES = 16
TAG_BYTES = 16
_KDF_INFO = b"syft_flwr flwr message body v2"
_MAX_PAIRS = 1024


class MessageKeys:
    """The keys one party uses for its message files: its own private keys (to sign and to
    open bodies sent to it) and the published public keys of the others.

    Keys are read through :mod:`syft_flwr.keys` and kept for ``refresh`` seconds before the
    files are checked again (a message costs a few microseconds of key handling, not a
    dozen path lookups). Raises FileNotFoundError at once, with what to do, if the party has
    no keys here.
    """

    def __init__(self, network: Network, email: str, *, refresh: float = 2.0) -> None:
        self.network = network
        self.email = validate_email(email)
        self.identity = Identity(
            email=self.email, network_root=network.root, path=network.identity_path(self.email)
        )
        self.refresh = refresh
        self._lock = threading.Lock()
        self._own: tuple[float, Ed25519PrivateKey, X25519PrivateKey] | None = None
        self._peers: dict[str, tuple[float, keys.PublicKeys]] = {}
        #: peer -> (own private key, peer's published keys, their X25519 secret)
        self._shared: dict[str, tuple[X25519PrivateKey, keys.PublicKeys, bytes]] = {}
        self._own_keys()  # fail early, with the keys module's advice

    # -- key lookups --------------------------------------------------------------------------
    def _own_keys(self) -> tuple[Ed25519PrivateKey, X25519PrivateKey]:
        now = time.monotonic()
        own = self._own
        if own is None or now - own[0] > self.refresh:
            own = (
                now,
                keys.load_signing_key(self.identity),
                keys.load_encryption_key(self.identity),
            )
            self._own = own
        return own[1], own[2]

    def public_keys(self, peer: str) -> keys.PublicKeys:
        """``peer``'s published keys (PublicKeysNotFoundError/PublicKeysInvalidError)."""
        now = time.monotonic()
        hit = self._peers.get(peer)
        if hit is not None and now - hit[0] <= self.refresh:
            return hit[1]
        published = keys.public_keys(self.network, peer)
        with self._lock:
            if len(self._peers) >= _MAX_PAIRS:
                self._peers.clear()
            self._peers[peer] = (now, published)
        return published

    # -- signatures ---------------------------------------------------------------------------
    def sign(self, data: bytes) -> bytes:
        return self._own_keys()[0].sign(data)

    def verify(self, sender: str, data: bytes, signature: bytes) -> None:
        """MessageFileError (kind ``bad-signature``) unless ``sender`` signed ``data``."""
        try:
            published = self.public_keys(sender)
        except (keys.PublicKeysNotFoundError, keys.PublicKeysInvalidError) as exc:
            raise MessageFileError(
                f"bad signature: cannot check a signature of {sender}: {exc}",
                kind="bad-signature",
                sender=sender,
            ) from None
        try:
            keys.verify_with(published.ed25519, data, signature)
        except keys.SignatureError as exc:
            raise MessageFileError(
                f"bad signature: not signed by {sender} (key {published.fingerprint}): {exc}; "
                "the file was altered after signing, or signed by someone else",
                kind="bad-signature",
                sender=sender,
            ) from None

    # -- bodies -------------------------------------------------------------------------------
    def _secret_with(self, peer: str) -> bytes:
        """The X25519 secret of this party and ``peer`` (cached per pair of keys)."""
        private = self._own_keys()[1]
        published = self.public_keys(peer)
        hit = self._shared.get(peer)
        # the key loaders return the same objects until a key file changes
        if hit is not None and hit[0] is private and hit[1] is published:
            return hit[2]
        try:
            shared = private.exchange(published.x25519)
        except ValueError as exc:  # a low-order public key: all-zero shared secret
            raise keys.PublicKeysInvalidError(
                f"{peer}'s encryption key is unusable: {exc}"
            ) from exc
        with self._lock:
            if len(self._shared) >= _MAX_PAIRS:
                self._shared.clear()
            self._shared[peer] = (private, published, shared)
        return shared

    def body_cipher(self, *, sender: str, recipient: str, message_id: str, salt: bytes) -> AESGCM:
        """The AES-256-GCM key of one message body from ``sender`` to ``recipient``."""
        peer = sender if recipient == self.email else recipient
        info = b"|".join(
            (_KDF_INFO, sender.encode(), recipient.encode(), message_id.encode("ascii"))
        )
        return AESGCM(hkdf_sha256(self._secret_with(peer), salt, info))

    @staticmethod
    def new_salt() -> bytes:
        return os.urandom(SALT_BYTES)


def hkdf_sha256(secret: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of 32 bytes: one HMAC to extract, one to expand. The same
    bytes as cryptography's ``HKDF`` for ``length=32``, at a tenth of the cost per message."""
    prk = hmac.digest(salt, secret, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def segment_nonce(index: int) -> bytes:
    """The GCM nonce of body segment ``index`` (the key is unique per message)."""
    return index.to_bytes(12, "big")


def segment_aad(message_id: str, index: int) -> bytes:
    return f"syft_flwr.message.v2|{message_id}|{index}".encode("ascii")
