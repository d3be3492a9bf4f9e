"""Who wrote a message file, and who can read its body.

Both rest on the X25519 keys each party publishes (:mod:`syft_flwr.crypto.keystore`). The
sender's private key and the recipient's public key agree on a secret only the two of them can
compute (NaCl's ``crypto_box`` authenticates its sender the same way):

- **Who wrote it**: the header, which holds the body's checksums, carries an HMAC-SHA256
  under a key derived from that secret for this direction (sender to recipient). A valid MAC
  proves the file was written by the claimed sender for this recipient and not changed
  since; a third party, another datasite included, cannot make one. It costs a few
  microseconds where an Ed25519 signature and its verification cost ~0.3 ms per message on
  a small machine. (Unlike a signature it convinces only the recipient, which is all a
  message between two parties needs; documents that others must check, such as job
  requests and a data owner's published status, stay Ed25519-signed.)
- **Who can read it**: bodies may be encrypted to the recipient. A key derived from the
  secret for this direction, expanded per message (HKDF-Expand) over a random salt and the
  message id, encrypts each body segment with AES-256-GCM. GCM's tag then takes the place of
  the body checksum (so encryption costs little more than hashing the body would), and a file
  sync in between only ever sees ciphertext.

:class:`MessageKeys` is one party's view: its own private key and the others' public keys.
It knows nothing of message files: :meth:`MessageKeys.check_mac` raises
:class:`~syft_flwr.crypto.errors.MessageAuthError`, which the codec turns into a refusal.
"""

from __future__ import annotations

import hmac
import os
import threading
import time

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syft_flwr.crypto import keystore
from syft_flwr.crypto.errors import (
    MessageAuthError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
)
from syft_flwr.crypto.pins import trusted_keys
from syft_flwr.network.layout import Network, validate_email

MAC_BYTES = 32
CIPHER = "x25519-hkdf-sha256-aes-256-gcm"
SALT_BYTES = 16
TAG_BYTES = 16
_BODY_INFO = b"syft_flwr message body v4"
_MAC_INFO = b"syft_flwr message header mac v4"
#: peers (and directions) whose keys are kept: an aggregator of 10,000 datasites keeps all
_MAX_PAIRS = 1 << 15


class MessageKeys:
    """The keys one party uses for its message files: its own private X25519 key (to
    authenticate what it writes and to open bodies sent to it) and the published public keys
    of the others.

    Keys are read through :mod:`syft_flwr.crypto.keystore` and kept for ``refresh`` seconds
    before the files are checked again (a message costs a few microseconds of key handling,
    not a dozen path lookups). Raises PrivateKeysNotFoundError (a FileNotFoundError) at once,
    with what to do, if the party has no keys here.
    """

    def __init__(self, network: Network, email: str, *, refresh: float = 2.0) -> None:
        self.network = network
        self.email = validate_email(email)
        self.refresh = refresh
        self._lock = threading.Lock()
        self._own: tuple[float, X25519PrivateKey] | None = None
        self._peers: dict[str, tuple[float, keystore.PublicKeys]] = {}
        #: (sender, recipient) -> (own private key, peer's published keys, MAC key, body key):
        #: derived once per pair of keys (the loaders return the same objects until a key
        #: file changes)
        self._direction_keys: dict[
            tuple[str, str], tuple[X25519PrivateKey, keystore.PublicKeys, bytes, bytes]
        ] = {}
        self._own_key()  # fail early, with the keystore's advice

    # -- key lookups --------------------------------------------------------------------------
    def _own_key(self) -> X25519PrivateKey:
        now = time.monotonic()
        own = self._own
        if own is None or now - own[0] > self.refresh:
            own = (now, keystore.load_encryption_key(self))  # self is a KeyOwner
            self._own = own
        return own[1]

    def public_keys(self, peer: str) -> keystore.PublicKeys:
        """``peer``'s published keys, as this party pinned them (PublicKeysNotFoundError,
        PublicKeysInvalidError, or its subclass KeyChangedError)."""
        now = time.monotonic()
        hit = self._peers.get(peer)
        if hit is not None and now - hit[0] <= self.refresh:
            return hit[1]
        published = trusted_keys(self.network, peer, self.email)
        with self._lock:
            if len(self._peers) >= _MAX_PAIRS:
                self._peers.clear()
            self._peers[peer] = (now, published)
        return published

    def _keys_for(self, sender: str, recipient: str) -> tuple[bytes, bytes]:
        """The MAC key and the body key of messages from ``sender`` to ``recipient`` (one of
        them is this party), derived from the X25519 secret of the two. Each direction has its
        own, so a reply copied back never passes as a request."""
        peer = sender if recipient == self.email else recipient
        private, published = self._own_key(), self.public_keys(peer)
        hit = self._direction_keys.get((sender, recipient))
        if hit is not None and hit[0] is private and hit[1] is published:
            return hit[2], hit[3]
        try:
            secret = private.exchange(published.x25519)
        except ValueError as exc:  # a low-order public key: all-zero shared secret
            raise PublicKeysInvalidError(f"{peer}'s encryption key is unusable: {exc}") from exc
        direction = b"|".join((sender.encode(), recipient.encode()))
        mac_key = hkdf_sha256(secret, b"", _MAC_INFO + b"|" + direction)
        body_key = hkdf_sha256(secret, b"", _BODY_INFO + b"|" + direction)
        with self._lock:
            if len(self._direction_keys) >= _MAX_PAIRS:
                self._direction_keys.clear()
            self._direction_keys[(sender, recipient)] = (private, published, mac_key, body_key)
        return mac_key, body_key

    # -- authentication -----------------------------------------------------------------------
    def mac(self, *, sender: str, recipient: str, data: bytes) -> bytes:
        """The HMAC-SHA256 of ``data`` from ``sender`` (this party) to ``recipient``."""
        return hmac.digest(self._keys_for(sender, recipient)[0], data, "sha256")

    def check_mac(self, *, sender: str, recipient: str, data: bytes, mac: bytes) -> None:
        """MessageAuthError unless ``sender`` wrote ``data`` for ``recipient`` (this party)."""
        try:
            expected = self.mac(sender=sender, recipient=recipient, data=data)
        except (PublicKeysNotFoundError, PublicKeysInvalidError) as exc:
            raise MessageAuthError(
                f"bad MAC: cannot check that {sender} wrote the file: {exc}", sender=sender
            ) from None
        if not hmac.compare_digest(expected, mac):
            fingerprint = self.public_keys(sender).fingerprint
            raise MessageAuthError(
                f"bad MAC: not written by {sender} (key {fingerprint}) for {recipient}; the "
                "file was altered after it was written, or written by someone else",
                sender=sender,
            )

    # -- bodies -------------------------------------------------------------------------------
    def body_cipher(self, *, sender: str, recipient: str, message_id: str, salt: bytes) -> AESGCM:
        """The AES-256-GCM key of one message body from ``sender`` to ``recipient``: the
        direction's body key expanded (HKDF-Expand, one HMAC) over the salt and message id."""
        info = salt + message_id.encode("ascii") + b"\x01"
        return AESGCM(hmac.digest(self._keys_for(sender, recipient)[1], info, "sha256"))

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
    return f"syft_flwr.message.v4|{message_id}|{index}".encode("ascii")
