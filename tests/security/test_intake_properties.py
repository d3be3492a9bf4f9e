"""Property-based tests of job intake and submission (hypothesis).

Whatever bytes, JSON, code trees or names reach them, the data owner's intake
(:func:`validate_submission`, ``get_all``) and the submitter's checks (``submit``, names,
paths) end in one of a documented set of errors, never a crash (KeyError, TypeError,
UnicodeDecodeError, RecursionError...) and never a hang (each example has a deadline):

- intake: :class:`SubmissionRefusedError` (incl. :class:`SubmissionIncompleteError`);
- submission and names: ``ValueError`` (incl. DatasetNotFoundError, JobNotFoundError) and
  ``FileNotFoundError``.

An accepted submission is always exactly the one that was signed.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syft_flwr.crypto import SignatureError, split_signature, verify_document
from syft_flwr.rds import (
    IntakePolicy,
    SubmissionRefusedError,
    setup_rds_server,
    validate_submission,
)
from syft_flwr.rds.intake import REQUEST_DOMAIN
from tests.rds.rds_helpers import DATASET, DO, DS, Net, make_net
from tests.security.forge import SECURITY, forge_submission

INTAKE_ERRORS = (SubmissionRefusedError,)
SUBMIT_ERRORS = (ValueError, FileNotFoundError)

ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates included
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)


@dataclass
class World:
    net: Net
    template: Path  # a valid signed submission, outside any inbox
    scratch: Path

    def copy(self) -> Path:
        """A fresh copy of the template (same folder name: the job id is signed)."""
        dest = self.scratch / uuid.uuid4().hex / self.template.name
        shutil.copytree(self.template, dest, symlinks=True)
        return dest

    def check(self, job_dir: Path):
        return validate_submission(self.net.do.network, DO, job_dir)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("world")
    net = make_net(base)
    template = forge_submission(base / "templates", net.ds.client.identity)
    w = World(net, template, base / "examples")
    assert w.check(w.copy()).request["job_id"] == template.name  # the template is valid
    return w


def _original(world: World) -> dict[str, Any]:
    return split_signature(json.loads((world.template / "request.json").read_text()))[0]


def _accepted_is_the_signed_one(world: World, job_dir: Path) -> bool:
    """Run intake; True if accepted (then it must be the original request), False if refused."""
    try:
        accepted = world.check(job_dir)
    except INTAKE_ERRORS as exc:
        assert str(exc)  # a message a person can read
        return False
    finally:
        shutil.rmtree(job_dir.parent, ignore_errors=True)
    payload = verify_document(world.net.do.network, DS, REQUEST_DOMAIN, accepted.request)
    assert payload == _original(world)
    return True


# -- the data owner's intake -----------------------------------------------------------------
NASTY_BYTES = st.one_of(
    st.binary(max_size=2048),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(4000, 20_000).map(lambda n: b"1" * n),  # an int too long to parse
    st.sampled_from([b"NaN", b'{"signature": NaN}', b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00"]),
)


@SECURITY
@given(data=NASTY_BYTES)
def test_arbitrary_bytes_as_request(world, data: bytes) -> None:
    job_dir = world.copy()
    (job_dir / "request.json").write_bytes(data)
    assert not _accepted_is_the_signed_one(world, job_dir)


@SECURITY
@given(value=JSON)
def test_arbitrary_json_as_request(world, value: Any) -> None:
    job_dir = world.copy()
    (job_dir / "request.json").write_text(json.dumps(value))
    assert not _accepted_is_the_signed_one(world, job_dir)


MUTATION = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(["job_id", "submitter", "signature", "files"])),
    st.tuples(st.just("set"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=14), JSON),
    st.tuples(
        st.just("set"),
        st.sampled_from(
            ["version", "job_id", "name", "dataset_name", "entrypoint", "submitter", "host"]
            + ["code_sha256", "files", "created_at", "description", "signature"]
        ),
        JSON,
    ),
    st.tuples(st.just("signature"), st.binary(min_size=0, max_size=80)),
    st.tuples(st.just("wrap"), st.sampled_from(["files", "name", "created_at", "version"])),
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _mutate(request: dict[str, Any], mutation: tuple) -> Any:
    kind = mutation[0]
    if kind == "delete":
        request.pop(mutation[1], None)
    elif kind == "set":
        request[mutation[1]] = mutation[2]
    elif kind == "signature":
        request["signature"] = base64.b64encode(mutation[1]).decode()
    elif kind == "wrap" and mutation[1] in request:
        request[mutation[1]] = [request[mutation[1]]]
    return request


@SECURITY
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_valid_request(world, mutations: list[tuple]) -> None:
    job_dir = world.copy()
    request = json.loads((job_dir / "request.json").read_text())
    original = copy.deepcopy(request)
    for mutation in mutations:
        request = _mutate(request, mutation)
    (job_dir / "request.json").write_text(json.dumps(request))
    accepted = _accepted_is_the_signed_one(world, job_dir)
    assert accepted == (_canonical(request) == _canonical(original))  # True == 1, not here


@SECURITY
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_request_with_one_byte_changed(world, position: int, byte: int) -> None:
    job_dir = world.copy()
    raw = bytearray((job_dir / "request.json").read_bytes())
    original = split_signature(json.loads(raw))
    position %= len(raw)
    raw[position] = byte
    (job_dir / "request.json").write_bytes(bytes(raw))
    try:  # the same fields and signature bytes (whitespace, or base64's unused bits, changed)?
        same = split_signature(json.loads(raw)) == original
    except (ValueError, SignatureError):
        same = False
    assert _accepted_is_the_signed_one(world, job_dir) == same


PART = st.text(alphabet="ab.é_-\\ \n", min_size=1, max_size=6).filter(
    lambda p: p not in (".", "..")
)
REL = st.lists(PART, min_size=1, max_size=3).map("/".join)
RAW_NAME = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)
CODE_OP = st.one_of(
    st.tuples(st.just("write"), REL, st.binary(max_size=64)),
    st.tuples(st.just("write"), st.sampled_from(["main.py", "helper.py"]), st.binary(max_size=64)),
    st.tuples(st.just("delete"), st.sampled_from(["main.py", "helper.py"])),
    st.tuples(st.just("mkdir"), REL),
    # link targets stay inside the example's copy: the test writes through links it makes
    st.tuples(st.just("symlink"), REL, st.sampled_from(["..", "main.py", "../request.json", "x"])),
    st.tuples(st.just("fifo"), REL),
    st.tuples(st.just("rawname"), RAW_NAME),
    st.tuples(st.just("replace_code"), st.sampled_from(["file", "symlink", "missing"])),
)


def _apply(code: Path, op: tuple) -> None:
    kind = op[0]
    if kind in ("write", "rawname"):
        target = os.path.join(os.fsencode(code), os.fsencode(op[1]) if kind == "write" else op[1])
        if os.path.lexists(target) and not os.path.isfile(target):
            return  # writing into a FIFO this test made would block the test itself
    try:
        if kind == "write":
            (code / op[1]).parent.mkdir(parents=True, exist_ok=True)
            (code / op[1]).write_bytes(op[2])
        elif kind == "delete":
            (code / op[1]).unlink(missing_ok=True)
        elif kind == "mkdir":
            (code / op[1]).mkdir(parents=True, exist_ok=True)
        elif kind == "symlink":
            (code / op[1]).parent.mkdir(parents=True, exist_ok=True)
            (code / op[1]).symlink_to(op[2])
        elif kind == "fifo":
            (code / op[1]).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(code / op[1])
        elif kind == "rawname":
            with open(os.path.join(os.fsencode(code), op[1]), "wb") as fh:
                fh.write(b"x")
        elif kind == "replace_code":
            shutil.rmtree(code)
            if op[1] == "file":
                code.write_text("not a folder")
            elif op[1] == "symlink":
                code.symlink_to("..", target_is_directory=True)
    except (FileExistsError, NotADirectoryError, IsADirectoryError, FileNotFoundError):
        pass  # an operation that does not fit the tree as it is now


def _tree(code: Path) -> dict[str, bytes] | None:
    if code.is_symlink() or not code.is_dir():
        return None
    out = {}
    for path in code.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            continue  # an empty folder is not part of the code
        if path.is_symlink() or not path.is_file():
            out[str(path)] = b"<special>"
        else:
            out[str(path.relative_to(code))] = path.read_bytes()
    return out


@SECURITY
@given(ops=st.lists(CODE_OP, min_size=1, max_size=5))
def test_mutated_code_tree(world, ops: list[tuple]) -> None:
    job_dir = world.copy()
    before = _tree(job_dir / "code")
    for op in ops:
        if (job_dir / "code").is_dir() and not (job_dir / "code").is_symlink():
            _apply(job_dir / "code", op)
    unchanged = _tree(job_dir / "code") == before
    assert _accepted_is_the_signed_one(world, job_dir) == unchanged


@SECURITY
@given(kind=st.sampled_from(["file", "symlink", "empty"]), content=st.binary(max_size=64))
def test_job_folder_is_not_a_folder(world, kind: str, content: bytes) -> None:
    job_dir = world.copy()
    shutil.rmtree(job_dir)
    if kind == "file":
        job_dir.write_bytes(content)
    elif kind == "symlink":
        job_dir.symlink_to(world.template, target_is_directory=True)
    else:
        job_dir.mkdir()
    assert not _accepted_is_the_signed_one(world, job_dir)


# -- the owner's listing with arbitrary inbox entries ----------------------------------------
@SECURITY
@given(
    name=RAW_NAME,
    kind=st.sampled_from(["file", "dir", "dir+request", "symlink"]),
    content=st.binary(max_size=128),
)
def test_listing_survives_arbitrary_inbox_entries(world, name: bytes, kind: str, content) -> None:
    net = world.net
    impatient = setup_rds_server(
        email=DO, root_dir=net.root, intake=IntakePolicy(incomplete_grace_s=0)
    ).init_session(host=DO)
    inbox = impatient.job.inbox
    entry = os.path.join(os.fsencode(inbox), name)
    if os.path.lexists(entry):
        return  # this name was used by an earlier example
    if kind == "file":
        with open(entry, "wb") as fh:
            fh.write(content)
    elif kind == "symlink":
        os.symlink(os.fsencode(net.do.client.private_path), entry)
    else:
        os.mkdir(entry)
        if kind == "dir+request":
            with open(os.path.join(entry, b"request.json"), "wb") as fh:
                fh.write(content)
    jobs = impatient.job.get_all()
    for job in jobs:  # only genuine submissions are ever listed
        assert job.submitter == DS
    text_name = os.fsdecode(name)
    if text_name.startswith("."):
        assert os.path.lexists(entry)  # hidden: a submitter's unfinished staging, left alone
        return
    refused = {r["entry"] for r in impatient.job.refused()}
    assert text_name in refused
    assert text_name not in [j.uid for j in jobs]
    assert net.do.client.config_path.exists()  # nothing of the owner's was touched


# -- the submitter's side and names ----------------------------------------------------------
@SECURITY
@given(
    name=st.one_of(st.just("ok-job"), ANY_TEXT),
    dataset=st.one_of(st.just(DATASET), ANY_TEXT),
    entrypoint=st.one_of(st.none(), st.just("main.py"), ANY_TEXT),
    description=ANY_TEXT,
)
def test_submit_with_arbitrary_names(world, name, dataset, entrypoint, description) -> None:
    guest = world.net.guest
    inbox = guest.job.inbox
    before = sorted(os.listdir(inbox))
    try:
        job = guest.job.submit(
            name=name,
            user_code_path=world.template / "code",
            dataset_name=dataset,
            entrypoint=entrypoint,
            description=description,
        )
    except SUBMIT_ERRORS as exc:
        assert str(exc)
        assert sorted(os.listdir(inbox)) == before  # nothing written
        return
    assert (name, dataset) == (job.name, job.dataset_name)
    assert world.check(inbox / job.uid).request["description"] == description


@SECURITY
@given(text=ANY_TEXT)
def test_names_never_leave_their_folder(world, text: str) -> None:
    net = world.net.do.network
    for folder, make in (
        (net.datasites_dir, net.datasite),
        (net.root / "private", net.private_dir),
    ):
        try:
            path = make(text)
        except ValueError:
            continue
        assert path.parent == folder and path.name == text
    guest = world.net.guest
    with contextlib.suppress(ValueError):  # DatasetNotFoundError is a ValueError
        assert guest.dataset.get(name=text).name == DATASET
    with contextlib.suppress(ValueError):  # JobNotFoundError and JobRefusedError are ValueErrors
        guest.job.get(uid=text)
