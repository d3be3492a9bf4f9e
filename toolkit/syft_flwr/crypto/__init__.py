"""Every cryptographic operation of the toolkit, in one package.

- :mod:`~syft_flwr.crypto.keystore`: a party's private keys on disk, and the public keys it
  publishes in ``keys.json`` (read through a cache).
- :mod:`~syft_flwr.crypto.documents`: Ed25519 signatures of bytes and of JSON documents under
  a domain (job requests, a data owner's status, shared results).
- :mod:`~syft_flwr.crypto.messages`: :class:`MessageKeys`, the per-direction MAC and body keys
  of message files (X25519 agreement, HKDF, AES-256-GCM).
- :mod:`~syft_flwr.crypto.sealed`: bodies sealed to one recipient.
- :mod:`~syft_flwr.crypto.pins`: the other parties' keys pinned at first contact (TOFU).
- :mod:`~syft_flwr.crypto.freshness`: sequence numbers that make older signed documents stale.
- :func:`create_party`: a party's identity file plus its keys.
"""

from syft_flwr.crypto.documents import (
    SIGNATURE_BYTES,
    SIGNATURE_FIELD,
    canonical_json,
    sign,
    sign_document,
    signed_bytes,
    split_signature,
    verify,
    verify_document,
    verify_with,
)
from syft_flwr.crypto.errors import (
    DecryptionError,
    MessageAuthError,
    PrivateKeysNotFoundError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
    SignatureError,
)
from syft_flwr.crypto.freshness import (
    SeenSequences,
    StaleDocumentError,
    next_sequence,
    sequence_of,
)
from syft_flwr.crypto.keystore import (
    KeyOwner,
    PublicKeys,
    clear_cache,
    ensure_keys,
    load_encryption_key,
    load_signing_key,
    public_keys,
    raw_public,
    read_regular_file,
)
from syft_flwr.crypto.messages import MessageKeys
from syft_flwr.crypto.party import create_party
from syft_flwr.crypto.pins import (
    KeyChangedError,
    accept_key,
    key_fingerprints,
    show_fingerprints,
    trusted_keys,
)
from syft_flwr.crypto.sealed import seal, unseal

__all__ = [
    "SIGNATURE_BYTES",
    "SIGNATURE_FIELD",
    "DecryptionError",
    "KeyChangedError",
    "KeyOwner",
    "MessageAuthError",
    "MessageKeys",
    "PrivateKeysNotFoundError",
    "PublicKeys",
    "PublicKeysInvalidError",
    "PublicKeysNotFoundError",
    "SeenSequences",
    "SignatureError",
    "StaleDocumentError",
    "accept_key",
    "canonical_json",
    "clear_cache",
    "create_party",
    "ensure_keys",
    "key_fingerprints",
    "load_encryption_key",
    "load_signing_key",
    "next_sequence",
    "public_keys",
    "raw_public",
    "read_regular_file",
    "seal",
    "sequence_of",
    "show_fingerprints",
    "sign",
    "sign_document",
    "signed_bytes",
    "split_signature",
    "trusted_keys",
    "unseal",
    "verify",
    "verify_document",
    "verify_with",
]
