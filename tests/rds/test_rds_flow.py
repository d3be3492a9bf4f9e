"""The whole flow with the data owner (this test) and the data scientist in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from syft_flwr.rds import setup_rds_server
from tests.rds.rds_helpers import DATASET, DO, DS, SCRIPTS, write_code


def test_whole_flow_across_processes(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "ds-code")
    ds = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "ds_flow.py"), str(net.root), str(code), DATASET],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The data owner waits for the submission, reviews, approves, runs, shares.
        do = setup_rds_server(email=DO, root_dir=net.root)
        admin = do.init_session(host=DO)
        assert admin.is_admin
        (job,) = admin.job.wait_for(status="pending_code_review", timeout=45, poll=0.2)
        assert job.submitter == DS and job.dataset_name == DATASET and job.entrypoint == "main.py"
        assert "DATA_DIR" in job.show_user_code()
        admin.job.approve(job)
        assert admin.job.get(uid=job.uid).status == "approved"
        handle = admin.run_private(job, blocking=True)
        assert handle.done and handle.returncode == 0 and handle.status == "completed"
        assert "counted 4 rows" in admin.job.show_logs(job)
        results = admin.job.share_results(job)
        assert job.status == "shared"
        out, err = ds.communicate(timeout=45)
    finally:
        if ds.poll() is None:
            ds.kill()
            ds.wait()
    assert ds.returncode == 0, err[-3000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["uid"] == job.uid
    assert seen["status"] == "shared"
    assert seen["mock_files"] == ["diabetes.csv"]
    assert seen["count"] == "4"  # the private data has 4 rows, the mock 1
    assert "counted 4 rows" in seen["stdout"]
    assert seen["run"]["kind"] == "private" and seen["run"]["exit_code"] == 0
    assert (results / "output" / "count.txt").read_text() == "4"
    refused = seen["refused"]  # what the guest tried from its own process
    assert refused["private_path"].startswith("PermissionError: ")
    assert "stays with its owner" in refused["private_path"]
    for action in ("approve", "run_private", "share"):
        assert refused[action].startswith("PermissionError: only the owner"), refused[action]
    assert refused["results_before_sharing"] != "allowed"
    assert "shar" in refused["results_before_sharing"]  # says the results are not shared yet

    events = [e["event"] for e in admin.audit_log()]
    assert events == [
        "dataset_create",
        "submission_seen",
        "approve",
        "run_start",
        "run_end",
        "share",
    ]


def test_notebook_api_surface(net, tmp_path: Path) -> None:
    """The calls the notebooks make, in their order, from one process."""
    assert net.admin.is_admin and not net.guest.is_admin
    assert net.ds.client.email == DS and net.ds.client.network.root == net.root.resolve() / (
        "local_syftbox_network"
    )
    identity = json.loads(net.ds.client.config_path.read_text())
    assert identity["email"] == DS
    assert net.guest.jobs is net.guest.job

    datasets = net.guest.dataset.get_all()
    assert [d.name for d in datasets] == [DATASET]
    dataset = net.guest.dataset.get(name=DATASET)
    assert "Pima" in dataset.description
    assert dataset.schema["diabetes.csv"]["columns"][0] == {"name": "Glucose", "type": "integer"}
    assert (dataset.get_mock_path() / "diabetes.csv").read_text().startswith("Glucose")
    assert net.admin.dataset.get(name=DATASET).get_private_path().is_dir()

    code = write_code(tmp_path / "code", helper="x = 1\n")
    (code / "__pycache__").mkdir()
    (code / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (code / "weights").mkdir()
    (code / "weights" / "round1.npz").write_bytes(b"\0" * 10)
    (code / "runs" / "123").mkdir(parents=True)  # the DS's own simulations' event logs
    (code / "runs" / "123" / "events.jsonl").write_text("{}\n")
    job = net.guest.job.submit(
        name="count-rows", user_code_path=code, dataset_name=DATASET, entrypoint="main.py"
    )
    assert sorted(p.name for p in job.code_path.iterdir()) == ["helper", "main.py"]
    assert net.guest.job.get(uid=job.uid).status == "pending_code_review"
    assert "count-rows" in repr(job) and job.uid in repr(job)

    pending = net.admin.job.get_all(status="pending_code_review")
    assert [j.uid for j in pending] == [job.uid]
    net.admin.job.approve(pending[0])
    assert net.guest.job.get(uid=job.uid).status == "approved"
    net.admin.run_private(job, blocking=True)
    assert net.guest.job.get(uid=job.uid).status == "completed"
    net.admin.job.share_results(job)
    results = net.guest.job.get_results(job)
    assert (results / "output" / "count.txt").read_text() == "4"
    assert net.guest.job.wait(job, status="shared", timeout=5).uid == job.uid


def test_reject_reaches_the_submitter(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code")
    job = net.guest.job.submit(name="j", user_code_path=code, dataset_name=DATASET)
    net.admin.job.reject(job, reason="reads more columns than needed")
    mirrored = net.guest.job.get(uid=job.uid)
    assert mirrored.status == "rejected"
    assert mirrored.reason == "reads more columns than needed"
    assert net.admin.audit_log()[-1]["event"] == "reject"
