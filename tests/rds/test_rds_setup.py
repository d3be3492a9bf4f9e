"""setup_rds_server: identity, keeping data across restarts, resetting one party only."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from syft_flwr.config import Identity
from syft_flwr.monitor import read_participant
from syft_flwr.rds import JobRefusedError, setup_rds_server
from tests.rds.rds_helpers import DATASET, DO, DS, submit


def test_identity_file(net) -> None:
    identity = Identity.load(net.ds.client.config_path)
    assert identity.email == DS
    assert identity.network_root == net.ds.client.network.root
    assert net.ds.client.config_path.is_relative_to(net.ds.client.network.private_dir(DS))
    assert json.loads(net.do.client.config_path.read_text())["email"] == DO


def test_rerun_keeps_datasets_and_jobs(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    net.admin.job.approve(job)
    again = setup_rds_server(email=DO, root_dir=net.root).init_session(host=DO)
    assert [d.name for d in again.dataset.get_all()] == [DATASET]
    assert again.job.get(uid=job.uid).status == "approved"
    assert len(again.audit_log()) == 3
    ds_again = setup_rds_server(email=DS, root_dir=net.root).init_session(host=DO)
    assert ds_again.job.get(uid=job.uid).status == "approved"


def test_reset_clears_only_that_party(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    ds_private_marker = net.ds.client.private_path / "notes.txt"
    ds_private_marker.write_text("mine")
    fresh = setup_rds_server(email=DO, root_dir=net.root, reset=True)
    private = net.root / "local_syftbox_network" / "private" / DO
    assert sorted(p.name for p in private.iterdir()) == ["identity.json", "keys"]
    admin = fresh.init_session(host=DO)
    assert admin.dataset.get_all() == []
    assert admin.job.get_all() == []
    assert admin.audit_log() == []
    assert Identity.load(fresh.client.config_path).email == DO  # recreated
    # The data scientist's side is untouched.
    assert ds_private_marker.read_text() == "mine"
    assert net.ds.client.config_path.exists()
    with pytest.raises(LookupError):
        net.guest.job.get(uid=job.uid)


def test_guest_can_reset_itself_without_touching_the_owner(net, tmp_path: Path) -> None:
    seen = submit(net, tmp_path)
    assert net.admin.job.get(uid=seen.uid).status == "pending_code_review"
    unseen = submit(net, tmp_path, name="unseen")
    setup_rds_server(email=DS, root_dir=net.root, reset=True)
    assert net.admin.job.get(uid=seen.uid).status == "pending_code_review"
    assert [d.name for d in net.admin.dataset.get_all()] == [DATASET]
    # A reset gives the party new keys: the owner pinned the old ones at first contact, so
    # anything under the new keys is refused (key_changed) until the owner accepts them.
    with pytest.raises(JobRefusedError, match="key_changed"):
        net.admin.job.get(uid=unseen.uid)


def test_bad_email_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid datasite email"):
        setup_rds_server(email="../etc", root_dir=tmp_path)
    with pytest.raises(ValueError, match="network key"):
        setup_rds_server(email=DO, root_dir=tmp_path, key="../up")
    assert list(tmp_path.iterdir()) == []


def test_dataset_reference_and_metadata(net, tmp_path: Path) -> None:
    referenced = tmp_path / "big-private"
    referenced.mkdir()
    (referenced / "diabetes.csv").write_text("Glucose,Age,Outcome\n1,2,0\n")
    ds = net.admin.dataset.create(
        name="referenced",
        path=referenced,
        mock_path=net.mock_dir,
        summary="kept in place",
        copy_private=False,
    )
    assert ds.get_private_path() == referenced.resolve()
    meta = json.loads((ds.dataset_dir / "metadata.json").read_text())
    assert meta["owner"] == DO and meta["summary"] == "kept in place" and meta["created_at"]
    assert meta["schema"]["diabetes.csv"]["columns"][-1] == {"name": "Outcome", "type": "integer"}
    assert not (ds.dataset_dir / "README.md").exists() and ds.description == ""
    # The private copy of the fixture's dataset lives in the owner's private folder.
    copied = net.admin.dataset.get(name=DATASET).get_private_path()
    assert copied.is_relative_to(net.admin.network.private_dir(DO))
    assert (copied / "diabetes.csv").read_text().count("\n") == 5
    net.admin.dataset.delete("referenced")
    assert [d.name for d in net.guest.dataset.get_all()] == [DATASET]
    assert referenced.exists()  # a referenced folder is the owner's, never deleted


def test_reset_while_the_owners_heartbeat_writes(net) -> None:
    """No status.json is written while reset deletes the datasite (else rmtree may fail)."""
    heartbeat = net.admin.heartbeat
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            heartbeat.beat()

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for _ in range(20):
            setup_rds_server(email=DO, root_dir=net.root, reset=True)
    finally:
        stop.set()
        thread.join(10)
    heartbeat.beat()
    assert read_participant(net.admin.network, DO).online  # the open session goes on
