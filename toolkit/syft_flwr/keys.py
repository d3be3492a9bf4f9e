"""A party's keys: Ed25519 to sign, X25519 to receive encrypted bodies.

```
private/<email>/keys/ed25519.pem     signing key (PKCS#8 PEM, mode 0600, never shared)
private/<email>/keys/x25519.pem      key agreement key (PKCS#8 PEM, mode 0600, never shared)
datasites/<email>/public/keys.json   {"version", "email", "ed25519", "x25519", "created_at"}
                                     (raw public keys, base64), what every other party reads
```

:func:`ensure_keys` creates the missing keys of a party and publishes their public halves; it is
idempotent (:meth:`Identity.create` calls it). :func:`sign` / :func:`verify` work on raw bytes;
:func:`sign_document` / :func:`verify_document` sign a JSON object under a *domain* (a string that
names what is signed, e.g. ``"rds.job_request.v1"``), so that a signature made for one purpose is
never valid for another. :func:`seal` / :func:`unseal` encrypt a body for one recipient
(ephemeral X25519 + HKDF-SHA256 + ChaCha20-Poly1305, like a libsodium sealed box: the sender is
anonymous, so sign what you seal when the recipient must know who sent it).

Loaded keys are cached per process, keyed by path and the file's (mtime, size, inode): a key
that is replaced on disk is read again, an unchanged one is never re-parsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from loguru import logger

from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.files import file_lock
from syft_flwr.network.layout import Network, validate_email

if TYPE_CHECKING:
    from syft_flwr.config import Identity

KEYS_VERSION = 1
SIGNING_KEY_FILE = "ed25519.pem"
ENCRYPTION_KEY_FILE = "x25519.pem"
PUBLIC_KEYS_FILE = "keys.json"
#: keys.json is tiny; anything larger is not one (and is never read whole).
MAX_PUBLIC_KEYS_BYTES = 16 * 1024
SIGNATURE_BYTES = 64
SEAL_MAGIC = b"SFS1"
_SEAL_INFO = b"syft_flwr seal v1"
_NONCE_BYTES = 12


class SignatureError(ValueError):
    """A signature is missing, malformed, or not made by the party it claims."""


class PublicKeysNotFoundError(FileNotFoundError):
    """The party never published keys (``datasites/<email>/public/keys.json`` is missing)."""


class PublicKeysInvalidError(ValueError):
    """The party's published ``keys.json`` is unreadable, malformed or for another email."""


class DecryptionError(ValueError):
    """A sealed body cannot be opened: not for this key, altered, or not a sealed body."""


# -- paths ------------------------------------------------------------------------------------
def private_keys_dir(network: Network, email: str) -> Path:
    return network.private_dir(email) / "keys"


def public_keys_path(network: Network, email: str) -> Path:
    return network.public_dir(email) / PUBLIC_KEYS_FILE


def _identity_keys_dir(identity: Identity) -> Path:
    return private_keys_dir(identity.network, identity.email)


# -- the cache --------------------------------------------------------------------------------
T = TypeVar("T")
_cache: dict[Path, tuple[tuple[int, int, int], Any]] = {}
_cache_lock = threading.Lock()
_warned_modes: set[Path] = set()


def _cached(path: Path, parse: Callable[[Path, os.stat_result], T]) -> T:
    """``parse(path, stat)``, cached until the file's mtime, size or inode change."""
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _cache_lock:
        hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    value = parse(path, st)
    with _cache_lock:
        _cache[path] = (stamp, value)
    return value


def clear_cache() -> None:
    """Forget every loaded key (the next use reads the files again)."""
    with _cache_lock:
        _cache.clear()


# -- creating keys ----------------------------------------------------------------------------
@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with file_lock(folder / ".lock"):
        yield


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start, atomically; never replaces."""
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:  # a short write (a full disk) must never leave a truncated key
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as exc:
            raise OSError(exc.errno, f"could not write the key {path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if a key is already there: a key is never replaced
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links; the caller holds the keys lock
            if path.exists():
                raise FileExistsError(path) from None
            os.rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _pem(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ensure_keys(network: Network, email: str) -> PublicKeys:
    """Create the keys ``email`` lacks and (re)publish its public keys; returns them.

    Existing private keys are kept. ``keys.json`` is rewritten only if it is missing or does
    not hold the public halves of the private keys (its ``created_at`` is kept otherwise).
    """
    validate_email(email)
    folder = private_keys_dir(network, email)
    with _locked(folder):
        for name, make in (
            (SIGNING_KEY_FILE, Ed25519PrivateKey.generate),
            (ENCRYPTION_KEY_FILE, X25519PrivateKey.generate),
        ):
            if not (folder / name).exists():
                _write_private(folder / name, _pem(make()))
                logger.debug(f"created {name} for {email} in {folder}")
        signing = _load_private(folder / SIGNING_KEY_FILE, Ed25519PrivateKey)
        encryption = _load_private(folder / ENCRYPTION_KEY_FILE, X25519PrivateKey)
        ed, x = _raw_public(signing.public_key()), _raw_public(encryption.public_key())
        path = public_keys_path(network, email)
        try:
            published = public_keys(network, email)
            if published.ed25519_bytes == ed and published.x25519_bytes == x:
                return published
        except (PublicKeysNotFoundError, PublicKeysInvalidError):
            pass
        atomic_write_json(
            path,
            {
                "version": KEYS_VERSION,
                "email": email,
                "ed25519": _b64(ed),
                "x25519": _b64(x),
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
        return public_keys(network, email)


# -- loading private keys ---------------------------------------------------------------------
K = TypeVar("K", Ed25519PrivateKey, X25519PrivateKey)


def _load_private(path: Path, kind: type[K]) -> K:
    def parse(p: Path, st: os.stat_result) -> K:
        if st.st_mode & 0o077 and p not in _warned_modes:
            _warned_modes.add(p)
            logger.warning(
                f"{p} is readable by other users (mode {stat.filemode(st.st_mode)}); "
                f"restrict it with: chmod 600 {p}"
            )
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, kind):
            raise ValueError(f"{p} does not hold an {kind.__name__[:-10]} private key")
        return key

    try:
        return _cached(path, parse)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no private key {path}: create the party's keys with "
            "setup_rds_server(email=..., root_dir=...) (or Identity.create) on this machine"
        ) from None


def load_signing_key(identity: Identity) -> Ed25519PrivateKey:
    """The party's Ed25519 private key (FileNotFoundError if it has none)."""
    return _load_private(_identity_keys_dir(identity) / SIGNING_KEY_FILE, Ed25519PrivateKey)


def load_encryption_key(identity: Identity) -> X25519PrivateKey:
    """The party's X25519 private key (FileNotFoundError if it has none)."""
    return _load_private(_identity_keys_dir(identity) / ENCRYPTION_KEY_FILE, X25519PrivateKey)


# -- public keys ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublicKeys:
    """What a party published in ``datasites/<email>/public/keys.json``."""

    email: str
    ed25519: Ed25519PublicKey
    x25519: X25519PublicKey
    created_at: str

    @property
    def ed25519_bytes(self) -> bytes:
        return _raw_public(self.ed25519)

    @property
    def x25519_bytes(self) -> bytes:
        return _raw_public(self.x25519)

    @property
    def fingerprint(self) -> str:
        """Short hex id of the signing key (what the audit log records)."""
        return hashlib.sha256(self.ed25519_bytes).hexdigest()[:16]


def _decode_key(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not base64") from exc
    if len(raw) != 32:
        raise ValueError(f"{what} is {len(raw)} bytes, not 32")
    return raw


def read_regular_file(path: Path, limit: int) -> bytes:
    """Read a regular file of at most ``limit`` bytes without following a symlink.

    ValueError if it is not a regular file or is too big; OSError (ELOOP) for a symlink.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{st.st_size} bytes, over the limit of {limit}")
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise ValueError(f"over the limit of {limit} bytes")
        return data
    finally:
        os.close(fd)


def public_keys(network: Network, email: str) -> PublicKeys:
    """The published keys of ``email``.

    PublicKeysNotFoundError if it never published any; PublicKeysInvalidError if its keys.json
    is malformed or names another party.
    """
    validate_email(email)
    path = public_keys_path(network, email)

    def parse(p: Path, st: os.stat_result) -> PublicKeys:
        try:
            data = json.loads(read_regular_file(p, MAX_PUBLIC_KEYS_BYTES).decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("email") != email:
                raise ValueError(f"it names {data.get('email')!r}, not {email!r}")
            created_at = data.get("created_at")
            return PublicKeys(
                email=email,
                ed25519=Ed25519PublicKey.from_public_bytes(
                    _decode_key(data.get("ed25519"), "ed25519")
                ),
                x25519=X25519PublicKey.from_public_bytes(_decode_key(data.get("x25519"), "x25519")),
                created_at=created_at if isinstance(created_at, str) else "",
            )
        except (ValueError, OSError, RecursionError) as exc:
            raise PublicKeysInvalidError(
                f"the published keys of {email} ({p}) are unusable: {exc}. {email} must run "
                "setup_rds_server again to republish them"
            ) from exc

    try:
        return _cached(path, parse)
    except FileNotFoundError:
        raise PublicKeysNotFoundError(
            f"{email} has not published keys ({path} is missing): it must join the network "
            f"with setup_rds_server(email={email!r}, ...) before others can exchange messages "
            "with it or check its signatures"
        ) from None
    except OSError as exc:  # e.g. keys.json is a symlink or unreadable
        raise PublicKeysInvalidError(
            f"the published keys of {email} ({path}) are unusable: {exc}"
        ) from exc


# -- signatures -------------------------------------------------------------------------------
def sign(identity: Identity, data: bytes) -> bytes:
    """A 64-byte Ed25519 signature of ``data`` by ``identity``."""
    return load_signing_key(identity).sign(bytes(data))


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


def verify(network: Network, email: str, data: bytes, signature: bytes) -> None:
    """Check that ``email`` signed ``data``; SignatureError (with why) otherwise."""
    try:
        keys = public_keys(network, email)
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
SIGNATURE_FIELD = "signature"


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, ASCII only."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def signed_bytes(domain: str, payload: dict[str, Any]) -> bytes:
    """What is signed for ``payload`` under ``domain``."""
    return b"syft_flwr:" + domain.encode("ascii") + b"\n" + canonical_json(payload)


def sign_document(identity: Identity, domain: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` plus a ``"signature"`` field (base64) by ``identity`` under ``domain``."""
    if SIGNATURE_FIELD in payload:
        raise ValueError(f"the payload already has a {SIGNATURE_FIELD!r} field")
    return {**payload, SIGNATURE_FIELD: _b64(sign(identity, signed_bytes(domain, payload)))}


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


def verify_document(network: Network, email: str, domain: str, document: Any) -> dict[str, Any]:
    """The payload of ``document`` if ``email`` signed it under ``domain``; else SignatureError."""
    payload, sig = split_signature(document)
    try:
        data = signed_bytes(domain, payload)
    except (TypeError, ValueError) as exc:  # e.g. NaN, which canonical JSON refuses
        raise SignatureError(f"the document cannot be put in canonical form: {exc}") from exc
    verify(network, email, data, sig)
    return payload


# -- sealed bodies ----------------------------------------------------------------------------
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
    eph_pub = _raw_public(ephemeral.public_key())
    key = _seal_key(ephemeral.exchange(recipient_key), eph_pub, _raw_public(recipient_key))
    nonce = os.urandom(_NONCE_BYTES)
    body = ChaCha20Poly1305(key).encrypt(nonce, bytes(plaintext), associated_data)
    return SEAL_MAGIC + eph_pub + nonce + body


def unseal(identity: Identity, sealed: bytes, *, associated_data: bytes = b"") -> bytes:
    """Open a body :func:`seal` made for ``identity``; DecryptionError if that fails."""
    head = len(SEAL_MAGIC) + 32 + _NONCE_BYTES
    if not isinstance(sealed, bytes | bytearray) or len(sealed) < head + 16:
        raise DecryptionError("not a sealed body: too short")
    if sealed[: len(SEAL_MAGIC)] != SEAL_MAGIC:
        raise DecryptionError("not a sealed body: wrong magic bytes")
    eph_pub = bytes(sealed[len(SEAL_MAGIC) : len(SEAL_MAGIC) + 32])
    nonce = bytes(sealed[len(SEAL_MAGIC) + 32 : head])
    private = load_encryption_key(identity)
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as exc:  # an all-zero shared secret: a malicious ephemeral key
        raise DecryptionError(f"not a sealed body: {exc}") from exc
    key = _seal_key(shared, eph_pub, _raw_public(private.public_key()))
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, bytes(sealed[head:]), associated_data)
    except InvalidTag:
        raise DecryptionError(
            f"the body was not sealed for {identity.email}, or it was altered"
        ) from None
