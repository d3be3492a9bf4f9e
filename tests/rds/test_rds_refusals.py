"""Every refusal: what a guest may not do, what a submission may not hold, what a run verifies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.rds import (
    AuditLogTamperedError,
    JobNotFoundError,
    JobRefusedError,
    JobStateError,
    SubmissionLimits,
    setup_rds_server,
)
from tests.rds.rds_helpers import DATASET, DO, DS, approved, submit, write_code


def inbox_entries(net) -> list[str]:
    return sorted(os.listdir(net.admin.job.inbox))


# -- what a guest may not do -----------------------------------------------------------------
def test_guest_cannot_read_private_path(net) -> None:
    with pytest.raises(PermissionError, match=f"stays with its owner {DO}.*get_mock_path"):
        net.guest.dataset.get(name=DATASET).get_private_path()


@pytest.mark.parametrize(
    "action",
    [
        lambda s, job: s.job.approve(job),
        lambda s, job: s.job.reject(job, reason="no"),
        lambda s, job: s.run_private(job),
        lambda s, job: s.run_mock(job),
        lambda s, job: s.job.share_results(job),
        lambda s, job: s.job.show_logs(job),
        lambda s, job: s.audit_log(),
        lambda s, job: s.dataset.create(name="x", path=".", mock_path="."),
    ],
    ids=["approve", "reject", "run_private", "run_mock", "share", "logs", "audit", "dataset"],
)
def test_guest_cannot_act_as_owner(net, tmp_path: Path, action) -> None:
    job = submit(net, tmp_path)
    with pytest.raises(PermissionError, match=f"only the owner of the datasite, {DO}"):
        action(net.guest, job)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"


def test_guest_sees_only_its_own_jobs(net, tmp_path: Path) -> None:
    mine = submit(net, tmp_path)
    other = setup_rds_server(email="ds2@openmined.org", root_dir=net.root).init_session(host=DO)
    theirs = other.job.submit(
        name="other", user_code_path=write_code(tmp_path / "c2"), dataset_name=DATASET
    )
    assert [j.uid for j in net.guest.job.get_all()] == [mine.uid]
    with pytest.raises(JobNotFoundError):
        net.guest.job.get(uid=theirs.uid)
    assert {j.uid for j in net.admin.job.get_all()} == {mine.uid, theirs.uid}


def test_unknown_datasite(net) -> None:
    with pytest.raises(FileNotFoundError, match="no datasite 'nobody@openmined.org'.*setup_rds"):
        net.ds.init_session(host="nobody@openmined.org")


def test_get_results_before_share(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    with pytest.raises(PermissionError, match="not been shared.*pending|not been shared"):
        net.guest.job.get_results(job)
    net.admin.run_private(job)
    with pytest.raises(PermissionError, match=f"not been shared by {DO} yet \\(status: complet"):
        net.guest.job.get_results(job)
    # Reading results before sharing changed nothing on the owner's side.
    assert net.admin.job.get(uid=job.uid).status == "completed"


# -- what a submission may not hold (nothing is written) -------------------------------------
def test_symlinked_file_refused(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    (code / "data.txt").symlink_to(secret)
    with pytest.raises(ValueError, match="symlink"):
        net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    assert inbox_entries(net) == []


def test_symlinked_folder_refused(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    (code / "pkg").mkdir()
    (code / "pkg" / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="symlink"):
        net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    (code / "pkg" / "link").unlink()
    link = tmp_path / "link-to-code"
    link.symlink_to(code, target_is_directory=True)
    with pytest.raises(ValueError, match="symlink"):
        net.guest.job.submit(name="j", user_code_path=link, dataset_name=DATASET)
    assert inbox_entries(net) == []


@pytest.mark.parametrize("entrypoint", ["../main.py", "sub/../../main.py", "/etc/main.py"])
def test_entrypoint_outside_code_refused(net, tmp_path: Path, entrypoint: str) -> None:
    code = write_code(tmp_path / "code")
    with pytest.raises(ValueError, match=r"absolute|leaves the code folder"):
        net.guest.job.submit(
            name="j", user_code_path=code, dataset_name=DATASET, entrypoint=entrypoint
        )
    assert inbox_entries(net) == []


def test_missing_entrypoint_refused(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    with pytest.raises(ValueError, match="entrypoint 'run.py' is not among the files"):
        net.guest.job.submit(
            name="j", user_code_path=code, dataset_name=DATASET, entrypoint="run.py"
        )
    assert inbox_entries(net) == []


def test_unknown_dataset_refused(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    with pytest.raises(ValueError, match=f"no dataset 'nope'.*{DATASET}"):
        net.guest.job.submit(name="j", user_code_path=code, dataset_name="nope")
    assert inbox_entries(net) == []


@pytest.mark.parametrize(
    ("name", "dataset"), [("../evil", DATASET), ("a/b", DATASET), ("ok", "../x"), ("", DATASET)]
)
def test_bad_names_refused(net, tmp_path: Path, name: str, dataset: str) -> None:
    code = write_code(tmp_path / "code")
    with pytest.raises(ValueError, match="is not allowed"):
        net.guest.job.submit(name=name, user_code_path=code, dataset_name=dataset)
    assert inbox_entries(net) == []


def test_oversized_file_refused_at_default_limit(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    with (code / "weights.bin").open("wb") as fh:  # sparse: 10 MB + 1 byte
        fh.truncate(10 * 1024 * 1024 + 1)
    with pytest.raises(ValueError, match="over the per-file limit of 10.0 MB"):
        net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    assert inbox_entries(net) == []


def test_limits_are_configurable(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code", a="x" * 600, b="y" * 600)
    small = SubmissionLimits(max_file_bytes=1000, max_total_bytes=100_000)
    strict_file = setup_rds_server(email=DS, root_dir=net.root, limits=small).init_session(DO)
    (code / "big.txt").write_text("z" * 1001)
    with pytest.raises(ValueError, match="per-file limit"):
        strict_file.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    (code / "big.txt").unlink()
    tiny_total = SubmissionLimits(max_file_bytes=1000, max_total_bytes=1000)
    strict_total = setup_rds_server(email=DS, root_dir=net.root, limits=tiny_total)
    with pytest.raises(ValueError, match="over the limit of"):
        strict_total.init_session(DO).job.submit(
            name="j", user_code_path=code, dataset_name=DATASET
        )
    assert inbox_entries(net) == []
    assert strict_file.job.submit(name="j", user_code_path=code, dataset_name=DATASET).uid


# -- what the owner verifies -----------------------------------------------------------------
def test_code_edited_after_approval_is_not_run(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    (job.code_path / "main.py").write_text("import shutil; print('exfiltrate')\n")  # the inbox
    handle = net.admin.run_private(job)  # runs the owner's copy taken at intake
    assert handle.returncode == 0
    assert handle.stdout_path.read_text() == "counted 4 rows\n"
    record = net.admin.store.load(job.uid)
    assert record.runs[0].code_sha256 == record.pinned_sha256 == job.code_sha256
    # The owner's own copy altered after approval (a fault, a stray edit): refused, audited.
    reviewed = net.admin.job.get(uid=job.uid).code_path
    (reviewed / "main.py").write_text("import shutil; print('exfiltrate')\n")
    with pytest.raises(PermissionError, match="changed after approval"):
        net.admin.run_private(job)
    record = net.admin.store.load(job.uid)
    assert record.status == "completed" and len(record.runs) == 1
    assert not net.admin.store.run_dir(job.uid, 2).exists()
    last = net.admin.audit_log()[-1]
    assert last["event"] == "refusal" and last["action"] == "run" and last["job_id"] == job.uid


def test_file_added_after_approval_is_not_run(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    (job.code_path / "sitecustomize.py").write_text("print('sneaky')\n")  # the inbox
    handle = net.admin.run_mock(job)
    assert handle.returncode == 0 and "sneaky" not in handle.stdout_path.read_text()
    assert not (net.admin.store.run_dir(job.uid, 1) / "code" / "sitecustomize.py").exists()
    reviewed = net.admin.job.get(uid=job.uid).code_path
    (reviewed / "sitecustomize.py").write_text("print('sneaky')\n")
    with pytest.raises(PermissionError, match="changed after approval"):
        net.admin.run_mock(job)


def test_code_edited_before_approval_is_not_approved(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"  # first sighting
    owner_view = net.admin.job.get(uid=job.uid)
    (job.code_path / "main.py").write_text("print('switched')\n")  # the inbox: ignored
    assert "switched" not in owner_view.show_user_code()
    (owner_view.code_path / "main.py").write_text("print('switched')\n")  # the owner's copy
    with pytest.raises(PermissionError, match="code changed"):
        net.admin.job.approve(job)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    assert net.admin.audit_log()[-1]["event"] == "refusal"


def test_symlink_planted_in_inbox_is_not_approved(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    (job.code_path / "key").symlink_to(net.admin.client.config_path)
    with pytest.raises(PermissionError, match="symlink"):
        net.admin.job.approve(job)


def test_forged_status_mirror_changes_nothing(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    mirror = job.code_path.parent / "status.json"
    atomic_write_json(mirror, {"job_id": job.uid, "status": "approved", "reason": None})
    assert net.admin.job.get_all(status="approved") == []
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    with pytest.raises(JobStateError, match="pending_code_review.*approve it first"):
        net.admin.run_private(job)
    # The owner's listing puts the truth back into the mirror.
    assert json.loads(mirror.read_text())["status"] == "pending_code_review"

    net.admin.job.approve(job)
    atomic_write_json(mirror, {"job_id": job.uid, "status": "shared", "reason": None})
    assert net.admin.job.get(uid=job.uid).status == "approved"
    with pytest.raises(JobStateError, match="is approved: run it first"):
        net.admin.job.share_results(job)


def test_forged_state_in_request_is_refused_or_ignored(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    request = job.code_path.parent / "request.json"
    data = json.loads(request.read_text())
    data["status"] = "approved"
    atomic_write_json(request, data)
    # Before the owner's first sighting: the request is no longer what the submitter signed.
    assert net.admin.job.get_all() == []
    with pytest.raises(JobRefusedError, match="malformed.*unexpected \\['status'\\]"):
        net.admin.job.get(uid=job.uid)
    # After it: the owner acts on its own copy of the request, whatever the inbox says.
    other = submit(net, tmp_path, name="other")
    assert net.admin.job.get(uid=other.uid).status == "pending_code_review"
    request = other.code_path.parent / "request.json"
    data = json.loads(request.read_text())
    data["status"] = "approved"
    atomic_write_json(request, data)
    assert net.admin.job.get(uid=other.uid).status == "pending_code_review"


def test_request_edited_after_sighting_is_ignored(net, tmp_path: Path) -> None:
    other_private = tmp_path / "other-private"
    other_private.mkdir()
    (other_private / "diabetes.csv").write_text("Glucose,Age,Outcome\n1,1,1\n")
    net.admin.dataset.create(name="other", path=other_private, mock_path=net.mock_dir)
    job = approved(net, tmp_path, name="count-rows")
    request = job.code_path.parent / "request.json"
    data = json.loads(request.read_text())
    data.update(dataset_name="other", entrypoint="main.py", name="innocent")
    atomic_write_json(request, data)
    listed = net.admin.job.get(uid=job.uid)
    assert (listed.name, listed.dataset_name) == ("count-rows", DATASET)
    handle = net.admin.run_private(job)
    assert (handle.output_dir / "count.txt").read_text() == "4"  # the approved dataset


def test_vanished_inbox_folder(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    shutil.rmtree(job.code_path.parent)
    assert [j.uid for j in net.admin.job.get_all(status="approved")] == [job.uid]
    # The owner runs its own copy of the reviewed code; there is just nowhere to share to.
    assert net.admin.run_private(job).returncode == 0
    with pytest.raises(FileNotFoundError, match="nowhere to share to"):
        net.admin.job.share_results(job)
    with pytest.raises(JobNotFoundError):
        net.guest.job.get(uid=job.uid)


def test_malformed_request_is_refused(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    junk = net.admin.job.inbox / "20990101T000000000000Z-deadbeef"
    junk.mkdir()
    (junk / "request.json").write_text("{not json")
    forged = net.admin.job.inbox / "20990101T000000000000Z-cafecafe"
    forged.mkdir()
    atomic_write_json(forged / "request.json", {"job_id": "other", "entrypoint": "/bin/sh"})
    assert [j.uid for j in net.admin.job.get_all()] == [job.uid]
    with pytest.raises(JobNotFoundError, match="refused at intake \\(malformed\\)"):
        net.admin.job.approve(junk.name)
    refused = {r["key"]: r for r in net.admin.job.refused()}
    assert set(refused) == {junk.name, forged.name}
    assert (refused[junk.name]["reason"], refused[forged.name]["reason"]) == (
        "malformed",
        "unsigned",
    )
    for r in refused.values():  # moved out of the inbox, kept for the owner to inspect
        assert (Path(r["quarantine"]) / "request.json").exists()
        assert not (net.admin.job.inbox / r["key"] / "request.json").exists()


def test_runs_and_decisions_need_the_right_status(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    with pytest.raises(JobStateError, match="approve it first"):
        net.admin.run_private(job)
    net.admin.job.reject(job, reason="not today")
    with pytest.raises(JobStateError, match="rejected"):
        net.admin.run_private(job)
    with pytest.raises(JobStateError, match="only a job pending review"):
        net.admin.job.approve(job)
    with pytest.raises(JobStateError, match="rejected by do1@openmined.org: not today"):
        net.guest.job.wait(job, status="shared", timeout=5)
    with pytest.raises(ValueError, match="give a reason"):
        net.admin.job.reject(submit(net, tmp_path, name="other"), reason=" ")


def test_wait_times_out_clearly(net, tmp_path: Path) -> None:
    job = submit(net, tmp_path)
    with pytest.raises(TimeoutError, match="still pending_code_review after 0.3 s"):
        net.guest.job.wait(job, status="shared", timeout=0.3, poll=0.1)
    with pytest.raises(TimeoutError, match="0 of 1 job"):
        net.admin.job.wait_for(status="approved", timeout=0.3, poll=0.1)


def test_reserved_env_refused(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    with pytest.raises(ValueError, match="DATA_DIR"):
        net.admin.run_private(job, env={"DATA_DIR": "/"})
    assert net.admin.job.get(uid=job.uid).status == "approved"


# -- datasets --------------------------------------------------------------------------------
def test_dataset_exists_unless_overwrite(net, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="overwrite=True"):
        net.admin.dataset.create(name=DATASET, path=net.private_dir, mock_path=net.mock_dir)
    (net.mock_dir / "diabetes.csv").write_text("Glucose,Age,Outcome\n1,2,0\n3,4,1\n")
    net.admin.dataset.create(
        name=DATASET, path=net.private_dir, mock_path=net.mock_dir, overwrite=True
    )
    mock = net.guest.dataset.get(name=DATASET).get_mock_path() / "diabetes.csv"
    assert mock.read_text().count("\n") == 3


def test_private_data_never_inside_datasites(net, tmp_path: Path) -> None:
    leaked = net.admin.network.public_dir(DO) / "secret"
    leaked.mkdir()
    with pytest.raises(ValueError, match="inside the shared datasites folder"):
        net.admin.dataset.create(name="leak", path=leaked, mock_path=net.mock_dir)
    with pytest.raises(ValueError, match="the same"):
        net.admin.dataset.create(name="same", path=net.mock_dir, mock_path=net.mock_dir)
    with pytest.raises(ValueError, match="is not allowed"):
        net.admin.dataset.create(name="../x", path=net.private_dir, mock_path=net.mock_dir)


# -- the audit log ---------------------------------------------------------------------------
def _audit_lines(net) -> tuple[Path, list[str]]:
    path = net.admin.audit.path
    return path, path.read_text().splitlines(keepends=True)


@pytest.fixture
def audited(net, tmp_path: Path):
    for i in range(3):
        approved(net, tmp_path, name=f"job{i}")
    assert len(net.admin.audit_log()) == 7  # dataset + 3 x (seen, approve)
    return net


def test_audit_log_edit_detected(audited) -> None:
    path, lines = _audit_lines(audited)
    entry = json.loads(lines[2])
    entry["submitter"] = "someone-else@openmined.org"
    lines[2] = json.dumps(entry, sort_keys=True) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(AuditLogTamperedError, match="line 4 .* does not follow line 3"):
        audited.admin.audit_log()


def test_audit_log_removal_detected(audited) -> None:
    path, lines = _audit_lines(audited)
    path.write_text("".join(lines[:3] + lines[4:]))
    with pytest.raises(AuditLogTamperedError, match="edited, removed or reordered"):
        audited.admin.audit_log()


def test_audit_log_first_line_removal_detected(audited) -> None:
    path, lines = _audit_lines(audited)
    path.write_text("".join(lines[1:]))
    with pytest.raises(AuditLogTamperedError):
        audited.admin.audit_log()


def test_audit_log_reorder_detected(audited) -> None:
    path, lines = _audit_lines(audited)
    lines[3], lines[4] = lines[4], lines[3]
    path.write_text("".join(lines))
    with pytest.raises(AuditLogTamperedError):
        audited.admin.audit_log()


def test_audit_log_truncation_detected(audited) -> None:
    path, lines = _audit_lines(audited)
    path.write_text("".join(lines[:-2]))
    with pytest.raises(AuditLogTamperedError, match="entries at its end were removed"):
        audited.admin.audit_log()
    # Appending does not paper over the cut: the next decision refuses to extend the log.
    with pytest.raises(AuditLogTamperedError, match="end of the audit log"):
        audited.admin.job.reject(audited.admin.job.get_all()[0], reason="x")
    # ... and a new entry is not appended onto a log whose end is gone unnoticed.
    path.write_text("".join(lines[:-1]) + "garbage\n")
    with pytest.raises(AuditLogTamperedError):
        audited.admin.job.approve(submit(audited, path.parent, name="late"))
