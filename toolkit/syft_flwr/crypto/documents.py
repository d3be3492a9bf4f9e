"""Ed25519 signatures: of raw bytes, and of JSON documents under a *domain*.

A domain is a string that names what is signed (e.g. ``"rds.job_request.v1"``), so that a
signature made for one purpose is never valid for another. A signed document is the payload
plus a ``"signature"`` field (base64) over ``b"syft_flwr:" + domain + b"\\n" +`` the payload's
canonical JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from syft_flwr.crypto.errors import (
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
    SignatureError,
)
from syft_flwr.crypto.keystore import KeyOwner, b64, load_signing_key
from syft_flwr.crypto.pins import trusted_keys
from syft_flwr.network.layout import Network

SIGNATURE_BYTES = 64
SIGNATURE_FIELD = "signature"


# -- raw bytes --------------------------------------------------------------------------------
def sign(owner: KeyOwner, data: bytes) -> bytes:
    """A 64-byte Ed25519 signature of ``data`` by ``owner``."""
    return load_signing_key(owner).sign(bytes(data))


def verify_with(public_key: Ed25519PublicKey | bytes, data: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``data`` with ``public_key``; SignatureError if it is not valid."""
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"a signature is {SIGNATURE_BYTES} bytes; got {signature!r:.40}")
    try:
        if isinstance(public_key, bytes | bytearray):
            public_key = Ed25519PublicKey.from_public_bytes(bytes(public_key))
        public_key.verify(bytes(signature), bytes(data))
    except InvalidSignature:
        raise SignatureError("the signature does not match the data and key") from None
    except ValueError as exc:
        raise SignatureError(f"unusable public key: {exc}") from exc


def verify(
    network: Network, email: str, data: bytes, signature: bytes, *, reader: str | None = None
) -> None:
    """Check that ``email`` signed ``data``; SignatureError (with why) otherwise.

    With ``reader``, ``email``'s keys must be the ones ``reader`` pinned (see crypto/pins.py).
    """
    try:
        keys = trusted_keys(network, email, reader)
    except (PublicKeysNotFoundError, PublicKeysInvalidError, ValueError) as exc:
        raise SignatureError(f"cannot check a signature of {email!r}: {exc}") from exc
    try:
        verify_with(keys.ed25519, data, signature)
    except SignatureError as exc:
        raise SignatureError(
            f"not signed by {email} (key {keys.fingerprint}): {exc}; the data was altered after "
            "signing or signed by someone else"
        ) from None


# -- signed JSON documents --------------------------------------------------------------------
def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, ASCII only."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def signed_bytes(domain: str, payload: dict[str, Any]) -> bytes:
    """What is signed for ``payload`` under ``domain``."""
    return b"syft_flwr:" + domain.encode("ascii") + b"\n" + canonical_json(payload)


def sign_document(owner: KeyOwner, domain: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus a ``"signature"`` field (base64) by ``owner`` under ``domain``."""
    if SIGNATURE_FIELD in payload:
        raise ValueError(f"the payload already has a {SIGNATURE_FIELD!r} field")
    return {**payload, SIGNATURE_FIELD: b64(sign(owner, signed_bytes(domain, payload)))}


def split_signature(document: Any) -> tuple[dict[str, Any], bytes]:
    """``(payload, signature)`` of a signed document; SignatureError if it has no signature."""
    if not isinstance(document, dict):
        raise SignatureError("a signed document is a JSON object")
    sig = document.get(SIGNATURE_FIELD)
    if sig is None:
        raise SignatureError("it is not signed (no 'signature' field)")
    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
    except (AttributeError, ValueError, binascii.Error, UnicodeEncodeError):
        raise SignatureError("its 'signature' field is not base64") from None
    if len(raw) != SIGNATURE_BYTES:
        raise SignatureError(f"its signature is {len(raw)} bytes, not {SIGNATURE_BYTES}")
    return {k: v for k, v in document.items() if k != SIGNATURE_FIELD}, raw


def verify_document(
    network: Network, email: str, domain: str, document: Any, *, reader: str | None = None
) -> dict[str, Any]:
    """The payload of ``document`` if ``email`` signed it under ``domain``; else SignatureError.

    ``reader``: the party checking, whose pin of ``email``'s keys must match.
    """
    payload, sig = split_signature(document)
    try:
        data = signed_bytes(domain, payload)
    except (TypeError, ValueError) as exc:  # e.g. NaN, which canonical JSON refuses
        raise SignatureError(f"the document cannot be put in canonical form: {exc}") from exc
    verify(network, email, data, sig, reader=reader)
    return payload
