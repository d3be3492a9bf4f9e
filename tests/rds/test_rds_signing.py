"""Signatures in the normal flow: signed requests, status mirrors and results manifests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from syft_flwr.crypto import public_keys, verify_document
from syft_flwr.rds import IntakePolicy, setup_rds_server
from syft_flwr.rds.intake import REQUEST_DOMAIN, REQUEST_FIELDS
from syft_flwr.rds.signed import RESULTS_DOMAIN, STATUS_DOMAIN
from tests.rds.rds_helpers import DATASET, DO, DS, approved, submit, write_code


def test_submission_is_signed_by_the_submitter(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    document = json.loads((job.code_path.parent / "request.json").read_text())
    payload = verify_document(net.ds.network, DS, REQUEST_DOMAIN, document)
    assert set(payload) == set(REQUEST_FIELDS)
    assert payload["submitter"] == DS and payload["host"] == DO and payload["job_id"] == job.uid
    assert payload["code_sha256"] == job.code_sha256 and payload["files"] == ["main.py"]

    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    fingerprint = public_keys(net.ds.network, DS).fingerprint
    assert net.admin.store.load(job.uid).submitter_key == fingerprint
    seen = net.admin.audit_log()[-1]
    assert seen["event"] == "submission_seen" and seen["submitter_key"] == fingerprint
    assert seen["signed_at"] == payload["created_at"]
    assert net.admin.store.seen_path(job.uid).exists()


def test_status_mirror_and_results_are_signed_by_the_owner(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    mirror = json.loads((job.code_path.parent / "status.json").read_text())
    status = verify_document(net.do.network, DO, STATUS_DOMAIN, mirror)
    assert (status["job_id"], status["status"]) == (job.uid, "approved")
    net.admin.run_private(job)
    results = net.admin.job.share_results(job)
    manifest = verify_document(
        net.do.network, DO, RESULTS_DOMAIN, json.loads((results / "manifest.json").read_text())
    )
    assert manifest["job_id"] == job.uid and manifest["host"] == DO and manifest["run"] == 1
    assert sorted(manifest["files"]) == [
        "logs/stderr.log",
        "logs/stdout.log",
        "output/count.txt",
        "output/data_dir.txt",
        "run.json",
    ]
    assert net.guest.job.get_results(job) == results
    assert net.guest.job.get(uid=job.uid).status == "shared"


def test_a_submission_arriving_in_pieces_waits_for_its_code(net, tmp_path: Path) -> None:
    """A file sync may deliver request.json before the code: the owner waits, then accepts."""
    job = submit(net, tmp_path, helper="x = 1\n")
    held_back = tmp_path / "held-back"
    shutil.move(job.code_path, held_back)
    assert net.admin.job.get_all() == [] and net.admin.job.refused() == []
    shutil.move(held_back, job.code_path)
    assert [j.uid for j in net.admin.job.get_all()] == [job.uid]


def test_submitting_without_keys_is_a_clear_error(net, tmp_path: Path) -> None:
    shutil.rmtree(net.ds.client.private_path / "keys")
    with pytest.raises(FileNotFoundError, match="no private key .*setup_rds_server"):
        net.guest.job.submit(
            name="j", user_code_path=write_code(tmp_path / "c"), dataset_name=DATASET
        )
    assert [n for n in os.listdir(net.admin.job.inbox) if not n.startswith(".")] == []
    # joining again restores the party's keys
    setup_rds_server(email=DS, root_dir=net.root)
    assert submit(net, tmp_path).uid


def test_refusal_record_and_policy(net, tmp_path: Path) -> None:
    policy = IntakePolicy(max_age_s=60.0, max_clock_skew_s=1.0, incomplete_grace_s=0.0)
    server = setup_rds_server(email=DO, root_dir=net.root, intake=policy)
    admin = server.init_session(host=DO)
    assert admin.intake is policy and server.intake is policy
    job = submit(net, tmp_path)
    (job.code_path.parent / "request.json").unlink()
    assert admin.job.get_all() == []
    (record,) = admin.job.refused()
    assert record["key"] == record["entry"] == job.uid
    assert record["reason"] == "incomplete" and "request.json is missing" in record["message"]
    assert record["claimed_submitter"] is None and record["refused_at"]
    assert Path(record["quarantine"]).is_relative_to(net.do.client.private_path)
    assert (Path(record["quarantine"]) / "code" / "main.py").exists()
