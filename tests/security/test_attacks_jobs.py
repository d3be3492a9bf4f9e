"""Attacks on the job system: each is refused with a clear error, and nothing is lost.

The attacker is a guest of the data owner's datasite (``eve``, or the data scientist's guest
session), or anyone who can write into the data owner's inbox (a shared folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syft_flwr.crypto import sign_document
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from syft_flwr.rds import (
    IntakePolicy,
    JobRefusedError,
    ResultsTamperedError,
    setup_rds_server,
)
from syft_flwr.rds.code import code_sha256
from syft_flwr.rds.server import RDSClient, Session
from syft_flwr.rds.signed import STATUS_DOMAIN
from tests.rds.rds_helpers import DATASET, DO, DS, approved, submit, write_code
from tests.security.forge import forge_submission

EVE = "eve@evil.org"


def eve(net):
    return setup_rds_server(email=EVE, root_dir=net.root)


def inbox(net) -> Path:
    return net.admin.job.inbox


def listed(net) -> list[str]:
    return [j.uid for j in net.admin.job.get_all()]


def assert_refused(net, uid: str, reason: str, *, seen_before: bool = False) -> dict:
    """``uid`` is refused for ``reason``: never listed, audited once, recorded, quarantined."""
    assert uid not in listed(net)
    with pytest.raises(JobRefusedError, match=reason):
        net.admin.job.get(uid=uid)
    with pytest.raises(JobRefusedError):
        net.admin.job.approve(uid)
    record = {r["key"]: r for r in net.admin.job.refused()}[uid]
    assert record["reason"] == reason and record["message"]
    log = net.admin.audit_log()
    refused = [e for e in log if e["event"] == "submission_refused" and e["job_id"] == uid]
    assert [e["reason"] for e in refused] == [reason]
    seen = [e for e in log if e["event"] == "submission_seen" and e["job_id"] == uid]
    assert len(seen) == int(seen_before)
    assert os.path.lexists(record["quarantine"])
    return record


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_symlink():
            digest.update(b"->" + os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


# -- reading private data --------------------------------------------------------------------
def test_guest_cannot_read_private_data_through_the_api(net) -> None:
    with pytest.raises(PermissionError, match=f"stays with its owner {DO}"):
        net.guest.dataset.get(name=DATASET).get_private_path()
    for name in ("../../private/do1@openmined.org/datasets/" + DATASET, "..", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="is not allowed"):
            net.guest.dataset.get(name=name)
    for uid in ("../../../private/do1@openmined.org", "..", "x/../../y"):
        with pytest.raises(ValueError, match="is not allowed"):
            net.guest.job.get(uid=uid)
        with pytest.raises(ValueError, match="is not allowed"):
            net.guest.job.get_results(uid)


@pytest.mark.parametrize(
    "email", ["../x", "do1@openmined.org/../../private", "a@b.org\n", "x@y..org", "", "a@b"]
)
def test_traversal_in_an_email_is_refused(net, tmp_path: Path, email: str) -> None:
    root = tmp_path / "elsewhere"
    with pytest.raises(ValueError, match="not a valid datasite email"):
        setup_rds_server(email=email, root_dir=root)
    assert not root.exists()
    with pytest.raises(ValueError, match="not a valid datasite email"):
        net.ds.init_session(host=email)
    with pytest.raises(ValueError, match="not a valid datasite email"):
        Network(net.root).private_dir(email)


def test_symlink_in_job_code_is_refused_at_submission(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    (code / "data.csv").symlink_to(net.do.client.private_path / "identity.json")
    with pytest.raises(ValueError, match="symlink"):
        net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    assert os.listdir(inbox(net)) == []


def test_symlink_planted_before_first_sighting_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    secret = net.admin.dataset.get(name=DATASET).get_private_path() / "diabetes.csv"
    (job.code_path / "leak.csv").symlink_to(secret)
    record = assert_refused(net, job.uid, "code_mismatch")
    assert "symlink" in record["message"]
    quarantined = Path(record["quarantine"]) / "code" / "leak.csv"
    assert quarantined.is_symlink() and secret.read_text().startswith("Glucose")


def test_job_folder_that_is_a_symlink_to_private_data_is_refused(net) -> None:
    private = net.do.client.private_path
    before = tree_hash(private / "datasets")
    link = inbox(net) / "20990101T000000000000Z-00000001"
    link.symlink_to(private, target_is_directory=True)
    record = assert_refused(net, link.name, "not_a_job_folder")
    assert "symlink" in record["message"]
    assert Path(record["quarantine"]).is_symlink()  # the link moved, not what it points to
    assert tree_hash(private / "datasets") == before
    assert net.do.client.config_path.exists()


def test_request_json_symlink_to_a_private_file_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    request = job.code_path.parent / "request.json"
    request.unlink()
    request.symlink_to(net.do.client.config_path)
    assert "symlink" in assert_refused(net, job.uid, "malformed")["message"]


def test_job_folder_swapped_for_a_symlink_after_approval(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    job_dir = job.code_path.parent
    elsewhere = tmp_path / "eves-copy"
    shutil.copytree(job_dir, elsewhere)
    (elsewhere / "code" / "main.py").write_text("print('eve was here')\n")
    shutil.rmtree(job_dir)
    job_dir.symlink_to(elsewhere, target_is_directory=True)
    handle = net.admin.run_private(job)  # the owner's copy taken at intake runs, not eve's
    assert handle.returncode == 0 and handle.stdout_path.read_text() == "counted 4 rows\n"
    record = net.admin.store.load(job.uid)
    assert record.runs[0].code_sha256 == record.pinned_sha256


def test_owner_never_writes_through_a_symlinked_job_folder(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_private(job)
    job_dir = job.code_path.parent
    target = net.do.network.public_dir(DO) / "target"  # somewhere only the owner should write
    target.mkdir()
    shutil.rmtree(job_dir)
    job_dir.symlink_to(target, target_is_directory=True)
    assert net.admin.job.get(uid=job.uid).status == "completed"  # state, mirror not rewritten
    with pytest.raises(PermissionError, match="no longer a plain folder"):
        net.admin.job.share_results(job)
    assert os.listdir(target) == []
    assert net.admin.job.get(uid=job.uid).status == "completed"


# -- what only the owner may do --------------------------------------------------------------
@pytest.mark.parametrize(
    "action",
    [
        lambda s, job: s.job.approve(job),
        lambda s, job: s.run_private(job),
        lambda s, job: s.run_mock(job),
        lambda s, job: s.job.share_results(job),
        lambda s, job: s.job.refused(),
    ],
    ids=["approve", "run_private", "run_mock", "share", "refused"],
)
def test_guests_cannot_approve_run_or_share(net, tmp_path: Path, action) -> None:
    job = submit(net, tmp_path)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    log_before = net.admin.audit_log()
    stranger = eve(net).init_session(host=DO)
    for guest in (net.guest, stranger):
        with pytest.raises(PermissionError, match=f"only the owner of the datasite, {DO}"):
            action(guest, job)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    assert net.admin.audit_log() == log_before


def test_code_edited_after_approval_never_runs(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    (job.code_path / "main.py").write_text("import os; print(os.environ['DATA_DIR'])\n")
    handle = net.admin.run_private(job)  # the inbox's edit is never read: the reviewed copy runs
    assert handle.returncode == 0 and handle.stdout_path.read_text() == "counted 4 rows\n"
    reviewed = net.admin.job.get(uid=job.uid).code_path / "main.py"
    original = reviewed.read_text()
    reviewed.write_text("import os; print(os.environ['DATA_DIR'])\n")
    with pytest.raises(PermissionError, match="changed after approval"):
        net.admin.run_private(job)
    assert len(net.admin.store.load(job.uid).runs) == 1
    assert net.admin.audit_log()[-1]["event"] == "refusal"
    reviewed.write_text(original)  # put back: the approved code runs
    assert net.admin.run_private(job).returncode == 0


# -- forged files ----------------------------------------------------------------------------
def test_forged_status_files_fool_nobody(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    mirror = job.code_path.parent / "status.json"
    unsigned = {"job_id": job.uid, "status": "approved", "reason": None}
    atomic_write_json(mirror, unsigned)
    assert net.guest.job.get(uid=job.uid).status == "unknown"  # the guest is not fooled
    evil = eve(net).client.identity
    atomic_write_json(mirror, sign_document(evil, STATUS_DOMAIN, unsigned))
    assert net.guest.job.get(uid=job.uid).status == "unknown"
    with pytest.raises(TimeoutError):
        net.guest.job.wait(job, status="approved", timeout=0.3, poll=0.1)
    # the owner ignores it and puts its own, signed mirror back
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    assert net.guest.job.get(uid=job.uid).status == "pending_code_review"
    # a genuine mirror of another job, copied over, is not this job's status
    other = submit(net, tmp_path, name="other")
    net.admin.job.reject(other, reason="no")
    shutil.copyfile(other.code_path.parent / "status.json", mirror)
    assert net.guest.job.get(uid=job.uid).status == "unknown"


def _forge_results(job, identity, count: str) -> None:
    results = job.code_path.parent / "results"
    (results / "output").mkdir(parents=True)
    (results / "output" / "count.txt").write_text(count)
    atomic_write_json(results / "run.json", {"n": 1, "kind": "private", "exit_code": 0})
    manifest = {"job_id": job.uid, "host": DO, "run": 1, "shared_at": "now", "files": {}}
    atomic_write_json(
        results / "manifest.json", sign_document(identity, "rds.job_results.v1", manifest)
    )
    atomic_write_json(
        job.code_path.parent / "status.json",
        sign_document(identity, STATUS_DOMAIN, {"job_id": job.uid, "status": "shared"}),
    )


def test_forged_results_before_sharing_are_not_returned(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_private(job)
    _forge_results(job, eve(net).client.identity, "999")
    for session in (net.guest, net.admin):
        with pytest.raises(PermissionError, match="not been shared"):
            session.job.get_results(job)
    net.admin.job.share_results(job)  # the owner's share replaces the forgery
    results = net.guest.job.get_results(job)
    assert (results / "output" / "count.txt").read_text() == "4"
    assert json.loads((results / "manifest.json").read_text())["files"]["output/count.txt"]


@pytest.mark.parametrize("change", ["add", "alter", "remove", "symlink", "manifest"])
def test_results_altered_after_sharing_are_refused(net, tmp_path: Path, change: str) -> None:
    job = approved(net, tmp_path)
    net.admin.run_private(job)
    results = net.admin.job.share_results(job)
    count = results / "output" / "count.txt"
    if change == "add":
        (results / "output" / "extra.txt").write_text("planted")
    elif change == "alter":
        count.write_text("999")
    elif change == "remove":
        count.unlink()
    elif change == "symlink":
        count.unlink()
        count.symlink_to(net.admin.dataset.get(name=DATASET).get_private_path() / "diabetes.csv")
    else:
        doc = json.loads((results / "manifest.json").read_text())
        doc["files"]["output/count.txt"] = "0" * 64
        atomic_write_json(results / "manifest.json", doc)
    with pytest.raises(ResultsTamperedError, match=f"not what {DO} shared"):
        net.guest.job.get_results(job)
    net.admin.job.share_results(job)  # sharing again restores them
    assert (net.guest.job.get_results(job) / "output" / "count.txt").read_text() == "4"


def test_results_copied_from_another_job_are_refused(net, tmp_path: Path) -> None:
    jobs = [approved(net, tmp_path, name=f"job{i}") for i in range(2)]
    for job in jobs:
        net.admin.run_private(job)
        net.admin.job.share_results(job)
    a, b = (job.code_path.parent / "results" for job in jobs)
    shutil.rmtree(b)
    shutil.copytree(a, b)
    with pytest.raises(ResultsTamperedError, match="manifest is for job"):
        net.guest.job.get_results(jobs[1])


# -- submissions -----------------------------------------------------------------------------
def test_unsigned_submission_is_refused(net) -> None:
    job_dir = forge_submission(inbox(net), None)
    before = tree_hash(job_dir)
    record = assert_refused(net, job_dir.name, "unsigned")
    assert tree_hash(Path(record["quarantine"])) == before  # nothing lost
    assert record["claimed_submitter"] == DS


def test_submission_signed_by_someone_else_is_refused(net) -> None:
    job_dir = forge_submission(inbox(net), eve(net).client.identity)  # claims to be from DS
    record = assert_refused(net, job_dir.name, "bad_signature")
    assert f"claims to come from {DS}" in record["message"]


def test_submitter_without_published_keys_is_refused(net) -> None:
    ghost = "ghost@openmined.org"
    job_dir = forge_submission(inbox(net), eve(net).client.identity, submitter=ghost)
    record = assert_refused(net, job_dir.name, "unknown_submitter")
    assert f"{ghost} has not published keys" in record["message"]


def test_impersonation_through_the_api_is_refused(net, tmp_path: Path) -> None:
    attacker = eve(net)
    client = RDSClient(email=DS, network=attacker.network, identity=attacker.client.identity)
    with pytest.raises(ValueError, match=f"{EVE} can only sign its own requests"):
        Session(client, DO).job.submit(
            name="j", user_code_path=write_code(tmp_path / "c"), dataset_name=DATASET
        )
    assert os.listdir(inbox(net)) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset_name", "other"),
        ("entrypoint", "helper.py"),
        ("name", "innocent"),
        ("description", "changed"),
        ("created_at", "2099-01-01T00:00:00+00:00"),
        ("submitter", EVE),
        ("host", "do2@openmined.org"),
    ],
)
def test_request_altered_after_signing_is_refused(net, tmp_path: Path, field, value) -> None:
    eve(net)  # has published keys: only the signature can tell
    job = submit(net, tmp_path, **{"helper.py": "x = 1\n"})
    request = job.code_path.parent / "request.json"
    data = json.loads(request.read_text())
    data[field] = value
    atomic_write_json(request, data)
    reason = "wrong_host" if field == "host" else "bad_signature"
    assert_refused(net, job.uid, reason)


def test_code_altered_or_replaced_consistently_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    (job.code_path / "main.py").write_text("print('other code')\n")
    assert (
        "not the code that was signed" in assert_refused(net, job.uid, "code_mismatch")["message"]
    )
    # code and hash both replaced: the hash is signed, so the signature breaks instead
    other = submit(net, tmp_path, name="other")
    (other.code_path / "main.py").write_text("print('other code')\n")
    request = other.code_path.parent / "request.json"
    data = json.loads(request.read_text())
    data["code_sha256"] = code_sha256(other.code_path)
    atomic_write_json(request, data)
    assert_refused(net, other.uid, "bad_signature")


def test_file_added_to_the_code_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    (job.code_path / "sitecustomize.py").write_text("print('sneaky')\n")
    assert_refused(net, job.uid, "code_mismatch")


def test_missing_code_waits_for_the_sync_then_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path, helper="x = 1\n")
    (job.code_path / "helper").unlink()
    assert listed(net) == [] and net.admin.job.refused() == []  # may still be arriving
    impatient = setup_rds_server(
        email=DO, root_dir=net.root, intake=IntakePolicy(incomplete_grace_s=0)
    ).init_session(host=DO)
    assert impatient.job.get_all() == []
    assert [r["reason"] for r in impatient.job.refused()] == ["incomplete"]


@pytest.mark.parametrize(
    ("shift", "reason"),
    [(timedelta(hours=-25), "expired"), (timedelta(hours=1), "from_the_future")],
)
def test_stale_or_future_submissions_are_refused(net, shift, reason) -> None:
    signed_at = (datetime.now(UTC) + shift).isoformat()
    job_dir = forge_submission(inbox(net), net.ds.client.identity, created_at=signed_at)
    assert_refused(net, job_dir.name, reason)
    # the honest submitter learns why from the owner's signed tombstone
    with pytest.raises(JobRefusedError, match=f"was refused by {DO}: the request was signed at"):
        net.guest.job.get(uid=job_dir.name)
    with pytest.raises(JobRefusedError, match=f"was refused by {DO}"):
        net.guest.job.wait(job_dir.name, timeout=5)


def test_small_clock_skew_and_a_stricter_policy(net, tmp_path: Path) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    ok = forge_submission(inbox(net), net.ds.client.identity, created_at=soon)
    assert listed(net) == [ok.name]
    strict = setup_rds_server(
        email=DO, root_dir=net.root, intake=IntakePolicy(max_age_s=3600)
    ).init_session(host=DO)
    two_hours = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    old = forge_submission(inbox(net), net.ds.client.identity, created_at=two_hours)
    assert [j.uid for j in strict.job.get_all()] == [ok.name]
    assert {r["key"]: r["reason"] for r in strict.job.refused()} == {old.name: "expired"}


def test_submission_replayed_to_another_datasite_is_refused(net, tmp_path: Path) -> None:
    do2 = setup_rds_server(email="do2@openmined.org", root_dir=net.root)
    admin2 = do2.init_session(host="do2@openmined.org")
    job = submit(net, tmp_path)
    shutil.copytree(job.code_path.parent, admin2.job.inbox / job.uid)
    assert admin2.job.get_all() == []
    assert [r["reason"] for r in admin2.job.refused()] == ["wrong_host"]
    assert listed(net) == [job.uid]  # the genuine one is fine where it was sent


def test_submission_replayed_after_its_records_were_removed(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    saved = tmp_path / "saved"
    shutil.copytree(job.code_path.parent, saved)
    shutil.rmtree(job.code_path.parent)
    shutil.rmtree(net.admin.store.job_dir(job.uid))  # the owner cleaned up its records
    shutil.copytree(saved, inbox(net) / job.uid)  # ... and someone drops the old job again
    assert (
        "already accepted" in assert_refused(net, job.uid, "replayed", seen_before=True)["message"]
    )


def test_a_refused_job_id_stays_refused(net) -> None:
    job_dir = forge_submission(inbox(net), None)
    record = assert_refused(net, job_dir.name, "unsigned")
    shutil.rmtree(job_dir)  # the owner's tombstone
    shutil.copytree(record["quarantine"], job_dir)  # the same entry dropped again
    assert_refused(net, job_dir.name, "unsigned")  # still exactly one refusal in the log


def test_odd_inbox_entries_are_quarantined(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    (inbox(net) / "not a job id").mkdir()
    (inbox(net) / "not a job id" / "payload.sh").write_text("rm -rf /\n")
    (inbox(net) / "20990101T000000000000Z-0000000f").write_text("a file, not a folder")
    (inbox(net) / "ünïcode").write_bytes(b"x")
    assert listed(net) == [job.uid]
    reasons = {r["entry"]: r["reason"] for r in net.admin.job.refused()}
    assert reasons == dict.fromkeys(
        ["not a job id", "20990101T000000000000Z-0000000f", "ünïcode"], "not_a_job_folder"
    )
    assert sorted(os.listdir(inbox(net))) == sorted([job.uid, "20990101T000000000000Z-0000000f"])
    assert (net.admin.store.quarantine_dir).is_dir()
    assert listed(net) == [job.uid]  # a second listing refuses nothing twice
    assert len([e for e in net.admin.audit_log() if e["event"] == "submission_refused"]) == 3


def test_oversized_request_is_refused_unread(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    request = job.code_path.parent / "request.json"
    with request.open("r+b") as fh:
        fh.truncate(5 * 1024 * 1024)  # sparse: over the 4 MB default
    assert "over the limit" in assert_refused(net, job.uid, "malformed")["message"]
