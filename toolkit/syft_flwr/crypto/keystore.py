"""A party's keys on disk: Ed25519 to sign, X25519 to agree on message keys.

```
private/<email>/keys/ed25519.pem     signing key (PKCS#8 PEM, mode 0600, never shared)
private/<email>/keys/x25519.pem      key agreement key (PKCS#8 PEM, mode 0600, never shared)
datasites/<email>/public/keys.json   {"version", "email", "ed25519", "x25519", "created_at"}
                                     (raw public keys, base64), what every other party reads
```

:func:`ensure_keys` creates the missing keys of a party and publishes their public halves; it is
idempotent. :func:`public_keys` reads what another party published.

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
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from loguru import logger

from syft_flwr.crypto.errors import (
    PrivateKeysNotFoundError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
)
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.files import file_lock
from syft_flwr.network.layout import Network, validate_email
from syft_flwr.network.safe_read import read_regular

KEYS_VERSION = 1
SIGNING_KEY_FILE = "ed25519.pem"
ENCRYPTION_KEY_FILE = "x25519.pem"
#: keys.json is tiny; anything larger is not one (and is never read whole).
MAX_PUBLIC_KEYS_BYTES = 16 * 1024


class KeyOwner(Protocol):
    """A party whose private keys are on this machine (e.g. a ``config.Identity``)."""

    @property
    def email(self) -> str: ...

    @property
    def network(self) -> Network: ...


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


def _write_private(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start, atomically; never replaces.
    ``durable`` flushes it to disk first."""
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:  # a short write (a full disk) must never leave a truncated key
                view = view[os.write(fd, view) :]
            if durable:
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


def raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key (what keys.json holds, base64)."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def ensure_keys(network: Network, email: str, *, durable: bool = True) -> PublicKeys:
    """Create the keys ``email`` lacks and (re)publish its public keys; returns them.

    Existing private keys are kept. ``keys.json`` is rewritten only if it is missing or does
    not hold the public halves of the private keys (its ``created_at`` is kept otherwise).
    ``durable=False`` does not flush the files to disk (a throwaway network).
    """
    validate_email(email)
    folder = network.private_keys_dir(email)
    with _locked(folder):
        for name, make in (
            (SIGNING_KEY_FILE, Ed25519PrivateKey.generate),
            (ENCRYPTION_KEY_FILE, X25519PrivateKey.generate),
        ):
            if not (folder / name).exists():
                _write_private(folder / name, _pem(make()), durable=durable)
                logger.debug(f"created {name} for {email} in {folder}")
        signing = _load_private(folder / SIGNING_KEY_FILE, Ed25519PrivateKey)
        encryption = _load_private(folder / ENCRYPTION_KEY_FILE, X25519PrivateKey)
        ed, x = raw_public(signing.public_key()), raw_public(encryption.public_key())
        try:
            published = public_keys(network, email)
            if published.ed25519_bytes == ed and published.x25519_bytes == x:
                return published
        except (PublicKeysNotFoundError, PublicKeysInvalidError):
            pass
        atomic_write_json(
            network.public_keys_path(email),
            {
                "version": KEYS_VERSION,
                "email": email,
                "ed25519": b64(ed),
                "x25519": b64(x),
                "created_at": datetime.now(UTC).isoformat(),
            },
            durable=durable,
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
        raise PrivateKeysNotFoundError(
            f"no private key {path}: create the party's keys with "
            "setup_rds_server(email=..., root_dir=...) (or syft_flwr.crypto.create_party) on "
            "this machine"
        ) from None


def load_signing_key(owner: KeyOwner) -> Ed25519PrivateKey:
    """The party's Ed25519 private key (PrivateKeysNotFoundError if it has none)."""
    path = owner.network.private_keys_dir(owner.email) / SIGNING_KEY_FILE
    return _load_private(path, Ed25519PrivateKey)


def load_encryption_key(owner: KeyOwner) -> X25519PrivateKey:
    """The party's X25519 private key (PrivateKeysNotFoundError if it has none)."""
    path = owner.network.private_keys_dir(owner.email) / ENCRYPTION_KEY_FILE
    return _load_private(path, X25519PrivateKey)


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
        return raw_public(self.ed25519)

    @property
    def x25519_bytes(self) -> bytes:
        return raw_public(self.x25519)

    @property
    def fingerprint(self) -> str:
        """Short hex id of the signing key (what the audit log records)."""
        return hashlib.sha256(self.ed25519_bytes).hexdigest()[:16]

    @property
    def long_fingerprint(self) -> str:
        """Both keys' sha256 in groups of four hex digits: what two people compare aloud."""
        digest = hashlib.sha256(self.ed25519_bytes + self.x25519_bytes).hexdigest()[:32]
        return " ".join(digest[i : i + 4] for i in range(0, 32, 4))


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
    """Read a regular file of at most ``limit`` bytes without following a symlink or blocking.

    UnsafeFileError (a ValueError) if it is not a regular file or is too big.
    """
    return read_regular(path, limit)


def public_keys(network: Network, email: str) -> PublicKeys:
    """The published keys of ``email``.

    PublicKeysNotFoundError if it never published any; PublicKeysInvalidError if its keys.json
    is malformed or names another party.
    """
    validate_email(email)
    path = network.public_keys_path(email)

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
