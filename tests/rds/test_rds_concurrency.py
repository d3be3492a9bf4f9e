"""Many submissions from several processes while the data owner keeps listing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from syft_flwr.rds import setup_rds_server
from tests.rds.rds_helpers import DATASET, DO, SCRIPTS, write_code

PER_PROCESS = 100


def test_200_submissions_from_two_processes_while_listing(net, tmp_path: Path) -> None:
    code = write_code(tmp_path / "code", helper="VALUE = 1\n")
    submitters = [
        subprocess.Popen(
            [
                sys.executable,
                str(SCRIPTS / "submit_many.py"),
                str(net.root),
                email,
                str(PER_PROCESS),
                str(code),
                DATASET,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for email in ("ds1@openmined.org", "ds2@openmined.org")
    ]
    errors: list[BaseException] = []
    listings: dict[str, list[int]] = {"main": [], "thread": []}

    def lister(session, name: str) -> None:
        # A second lister in another thread races the first on every first sighting.
        try:
            while any(p.poll() is None for p in submitters):
                listings[name].append(len(session.job.get_all()))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    other = setup_rds_server(email=DO, root_dir=net.root).init_session(host=DO)
    thread = threading.Thread(target=lister, args=(other, "thread"))
    thread.start()
    try:
        lister(net.admin, "main")
        outputs = [p.communicate(timeout=120) for p in submitters]
    finally:
        for p in submitters:
            if p.poll() is None:
                p.kill()
                p.wait()
        thread.join(timeout=60)
    assert not errors, errors
    for p, (_, err) in zip(submitters, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    submitted = [uid for out, _ in outputs for uid in out.split()]
    assert len(submitted) == 2 * PER_PROCESS == len(set(submitted))
    for counts in listings.values():
        assert counts == sorted(counts)  # a job once listed never disappears
        # the listers really raced the submitters: they saw the inbox partly filled
        assert len(counts) >= 3 and any(0 < n < 2 * PER_PROCESS for n in counts), counts

    jobs = net.admin.job.get_all()
    assert sorted(j.uid for j in jobs) == sorted(submitted)
    assert [j.uid for j in jobs] == sorted(j.uid for j in jobs)  # oldest first
    assert {j.status for j in jobs} == {"pending_code_review"}
    assert {j.submitter for j in jobs} == {"ds1@openmined.org", "ds2@openmined.org"}
    assert len(net.admin.job.get_all(status="pending_code_review")) == 2 * PER_PROCESS

    seen = [e["job_id"] for e in net.admin.audit_log() if e["event"] == "submission_seen"]
    assert sorted(seen) == sorted(submitted)  # each first sighting recorded exactly once
