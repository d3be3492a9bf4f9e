"""Every cryptographic operation of the toolkit, in one package.

- :mod:`~syft_flwr.crypto.keystore`: a party's private keys on disk, and the public keys it
  publishes in ``keys.json`` (read through a cache).
- :mod:`~syft_flwr.crypto.documents`: Ed25519 signatures of bytes and of JSON documents under
  a domain (job requests, a data owner's status, shared results).
- :mod:`~syft_flwr.crypto.messages`: :class:`MessageKeys`, the per-direction MAC and body keys
  of message files (X25519 agreement, HKDF, AES-256-GCM).
- :mod:`~syft_flwr.crypto.sealed`: bodies sealed to one recipient.
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
from syft_flwr.crypto.sealed import seal, unseal

__all__ = [
    "SIGNATURE_BYTES",
    "SIGNATURE_FIELD",
    "DecryptionError",
    "KeyOwner",
    "MessageAuthError",
    "MessageKeys",
    "PrivateKeysNotFoundError",
    "PublicKeys",
    "PublicKeysInvalidError",
    "PublicKeysNotFoundError",
    "SignatureError",
    "canonical_json",
    "clear_cache",
    "create_party",
    "ensure_keys",
    "load_encryption_key",
    "load_signing_key",
    "public_keys",
    "raw_public",
    "read_regular_file",
    "seal",
    "sign",
    "sign_document",
    "signed_bytes",
    "split_signature",
    "unseal",
    "verify",
    "verify_document",
    "verify_with",
]
