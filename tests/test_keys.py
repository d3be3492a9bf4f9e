"""A party's keys: creation, publication, signatures, signed documents, sealed bodies."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from syft_flwr import crypto
from syft_flwr.config import Identity
from syft_flwr.crypto import (
    DecryptionError,
    PublicKeysInvalidError,
    PublicKeysNotFoundError,
    SignatureError,
)
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network

ALICE = "alice@openmined.org"
BOB = "bob@openmined.org"


@pytest.fixture
def network(tmp_path: Path) -> Network:
    return Network(tmp_path / "net")


@pytest.fixture
def alice(network: Network) -> Identity:
    return crypto.create_party(network, ALICE)


@pytest.fixture
def bob(network: Network) -> Identity:
    return crypto.create_party(network, BOB)


def _published(network: Network, email: str) -> dict:
    return json.loads(network.public_keys_path(email).read_text())


def test_create_makes_private_keys_and_publishes_public_ones(network, alice) -> None:
    folder = network.private_dir(ALICE) / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("ed25519.pem", "x25519.pem"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
        assert (folder / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    published = _published(network, ALICE)
    assert published["email"] == ALICE and published["version"] == 1 and published["created_at"]
    assert network.public_keys_path(ALICE) == network.public_dir(ALICE) / "keys.json"
    signing = crypto.load_signing_key(alice)
    public = crypto.public_keys(network, ALICE)
    assert base64.b64decode(published["ed25519"]) == public.ed25519_bytes
    assert public.ed25519_bytes == crypto.raw_public(signing.public_key())
    assert len(base64.b64decode(published["x25519"])) == 32
    assert "PRIVATE" not in network.public_keys_path(ALICE).read_text()


def test_create_party_writes_the_identity_and_identity_write_makes_no_keys(network) -> None:
    bare = Identity.write(network, BOB)  # who the party is, nothing more
    assert Identity.load(bare.path).email == BOB
    assert not network.private_keys_dir(BOB).exists()
    with pytest.raises(PublicKeysNotFoundError):
        crypto.public_keys(network, BOB)
    party = crypto.create_party(network, ALICE)
    assert Identity.load(party.path).email == ALICE
    assert party.path == network.identity_path(ALICE)
    assert network.private_keys_dir(ALICE) == network.private_dir(ALICE) / "keys"
    assert crypto.public_keys(network, ALICE).email == ALICE


def test_config_loads_no_crypto() -> None:
    """config.py is who a party is; reading it must not load the crypto package."""
    code = (
        "import sys, syft_flwr.config\n"
        "crypto = ('syft_flwr.crypto', 'cryptography')\n"
        "print(sorted(m for m in sys.modules if m.startswith(crypto)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_recreate_keeps_keys_and_created_at(network, alice) -> None:
    folder = network.private_dir(ALICE) / "keys"
    before = {n: (folder / n).read_bytes() for n in ("ed25519.pem", "x25519.pem")}
    published = _published(network, ALICE)
    crypto.create_party(network, ALICE)
    assert {n: (folder / n).read_bytes() for n in before} == before
    assert _published(network, ALICE) == published


def test_lost_or_overwritten_keys_json_is_republished(network, alice, bob) -> None:
    original = _published(network, ALICE)
    network.public_keys_path(ALICE).unlink()
    crypto.create_party(network, ALICE)
    assert _published(network, ALICE)["ed25519"] == original["ed25519"]
    # someone put Bob's key in Alice's keys.json: the next setup puts Alice's back
    forged = dict(original, ed25519=_published(network, BOB)["ed25519"])
    atomic_write_json(network.public_keys_path(ALICE), forged)
    crypto.create_party(network, ALICE)
    assert _published(network, ALICE)["ed25519"] == original["ed25519"]


def test_sign_and_verify(network, alice, bob) -> None:
    sig = crypto.sign(alice, b"payload")
    assert len(sig) == 64
    crypto.verify(network, ALICE, b"payload", sig)
    crypto.verify_with(crypto.public_keys(network, ALICE).ed25519_bytes, b"payload", sig)
    with pytest.raises(SignatureError, match=f"not signed by {ALICE}.*altered after signing"):
        crypto.verify(network, ALICE, b"payloaD", sig)
    with pytest.raises(SignatureError, match=f"not signed by {BOB}"):
        crypto.verify(network, BOB, b"payload", sig)
    with pytest.raises(SignatureError, match="64 bytes"):
        crypto.verify(network, ALICE, b"payload", sig[:-1])
    with pytest.raises(SignatureError, match="64 bytes"):
        crypto.verify(network, ALICE, b"payload", "not bytes")  # type: ignore[arg-type]


def test_party_without_keys(network, alice) -> None:
    carol = "carol@openmined.org"
    with pytest.raises(PublicKeysNotFoundError, match=f"{carol} has not published keys"):
        crypto.public_keys(network, carol)
    with pytest.raises(SignatureError, match="has not published keys"):
        crypto.verify(network, carol, b"x", crypto.sign(alice, b"x"))
    with pytest.raises(ValueError, match="not a valid datasite email"):
        crypto.public_keys(network, "../x")
    with pytest.raises(SignatureError, match="not a valid datasite email"):
        crypto.verify(network, "../x", b"x", crypto.sign(alice, b"x"))
    no_keys = Identity(email=carol, network_root=network.root, path=network.identity_path(carol))
    with pytest.raises(FileNotFoundError, match="no private key .*setup_rds_server"):
        crypto.sign(no_keys, b"x")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"email": "bob@openmined.org", "ed25519": "AA==", "x25519": "AA=="}',
        b'{"email": "alice@openmined.org", "ed25519": "!!", "x25519": "AA=="}',
        b'{"email": "alice@openmined.org", "ed25519": "AAAA", "x25519": "AAAA"}',
        b"[" * 8000 + b"]" * 8000,
        b"\xff\xfe",
    ],
    ids=["not-json", "list", "other-email", "not-base64", "short", "deep", "not-utf8"],
)
def test_malformed_keys_json(network, alice, content: bytes) -> None:
    network.public_keys_path(ALICE).write_bytes(content)
    with pytest.raises(PublicKeysInvalidError, match="unusable.*run setup_rds_server again"):
        crypto.public_keys(network, ALICE)
    with pytest.raises(SignatureError):
        crypto.verify(network, ALICE, b"x", crypto.sign(alice, b"x"))


def test_keys_json_symlink_is_not_followed(network, alice, bob) -> None:
    path = network.public_keys_path(ALICE)
    path.unlink()
    path.symlink_to(network.public_keys_path(BOB))
    with pytest.raises(PublicKeysInvalidError):
        crypto.public_keys(network, ALICE)


def test_cache_follows_changes_on_disk(network, alice) -> None:
    first = crypto.load_signing_key(alice)
    assert crypto.load_signing_key(alice) is first  # unchanged file: parsed once
    sig = crypto.sign(alice, b"x")
    # a new identity for the same email (e.g. after a reset): new keys, picked up at once
    for name in ("ed25519.pem", "x25519.pem"):
        (network.private_dir(ALICE) / "keys" / name).unlink()
    crypto.create_party(network, ALICE)
    assert crypto.load_signing_key(alice) is not first
    with pytest.raises(SignatureError):
        crypto.verify(network, ALICE, b"x", sig)
    crypto.verify(network, ALICE, b"x", crypto.sign(alice, b"x"))


CREATE = (
    "import sys; from pathlib import Path\n"
    "from syft_flwr.crypto import create_party, public_keys\n"
    "from syft_flwr.network.layout import Network\n"
    "net = Network(Path(sys.argv[1]))\n"
    "create_party(net, sys.argv[2])\n"
    "print(public_keys(net, sys.argv[2]).fingerprint)\n"
)


def test_concurrent_creation_agrees_on_one_key(network) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(network.root), ALICE],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    fingerprints = {out.strip() for out, _ in outs}
    assert fingerprints == {crypto.public_keys(network, ALICE).fingerprint}
    leftovers = [n for n in os.listdir(network.private_dir(ALICE) / "keys") if "tmp" in n]
    assert leftovers == []


def test_signed_documents(network, alice, bob) -> None:
    payload = {"b": [1, 2, {"z": None}], "a": "é", "n": 3}
    doc = crypto.sign_document(alice, "test.v1", payload)
    assert crypto.verify_document(network, ALICE, "test.v1", doc) == payload
    reordered = json.loads(json.dumps(dict(reversed(list(doc.items())))))
    assert crypto.verify_document(network, ALICE, "test.v1", reordered) == payload
    with pytest.raises(SignatureError):  # a signature for one purpose is not valid for another
        crypto.verify_document(network, ALICE, "other.v1", doc)
    with pytest.raises(SignatureError):
        crypto.verify_document(network, ALICE, "test.v1", {**doc, "n": 4})
    with pytest.raises(SignatureError):
        crypto.verify_document(network, ALICE, "test.v1", {**doc, "extra": 1})
    with pytest.raises(SignatureError, match="not signed"):
        crypto.verify_document(network, ALICE, "test.v1", payload)
    with pytest.raises(SignatureError, match="not base64"):
        crypto.verify_document(network, ALICE, "test.v1", {**payload, "signature": 5})
    with pytest.raises(SignatureError):
        crypto.verify_document(network, BOB, "test.v1", doc)
    with pytest.raises(SignatureError, match="canonical"):
        crypto.verify_document(network, ALICE, "test.v1", {**doc, "n": float("nan")})
    with pytest.raises(ValueError, match="already has"):
        crypto.sign_document(alice, "test.v1", doc)


def test_seal_and_unseal(network, alice, bob) -> None:
    sealed = crypto.seal(network, BOB, b"weights", associated_data=b"msg-1")
    assert b"weights" not in sealed
    assert crypto.unseal(bob, sealed, associated_data=b"msg-1") == b"weights"
    assert crypto.seal(network, BOB, b"weights", associated_data=b"msg-1") != sealed  # ephemeral
    with pytest.raises(DecryptionError, match=f"not sealed for {ALICE}"):
        crypto.unseal(alice, sealed, associated_data=b"msg-1")
    with pytest.raises(DecryptionError):
        crypto.unseal(bob, sealed, associated_data=b"msg-2")
    altered = bytearray(sealed)
    altered[-1] ^= 1
    with pytest.raises(DecryptionError):
        crypto.unseal(bob, bytes(altered), associated_data=b"msg-1")
    with pytest.raises(DecryptionError, match="too short"):
        crypto.unseal(bob, b"SFS1")
    with pytest.raises(DecryptionError, match="magic"):
        crypto.unseal(bob, b"XXXX" + sealed[4:], associated_data=b"msg-1")
    zero_key = b"SFS1" + bytes(32) + bytes(12) + bytes(32)  # a low-order ephemeral key
    with pytest.raises(DecryptionError):
        crypto.unseal(bob, zero_key)
    assert crypto.unseal(bob, crypto.seal(network, BOB, b"")) == b""
