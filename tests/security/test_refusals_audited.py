"""What a datasite's node refuses during an approved job reaches the data owner's audit log.

Real processes: the data owners' approved jobs started by ``run_private`` and the
aggregator's ``main.py --active``; the bad files are dropped into a live inbox.
"""

from __future__ import annotations

import uuid

from tests.faults.helpers import ANALYTICS_APP, federation, pima_data
from tests.support import DATASITES

DO1, DO2 = DATASITES


def test_files_refused_during_a_run_are_written_to_the_owners_audit_log(tmp_path) -> None:
    with federation(tmp_path, ANALYTICS_APP, [pima_data(1), pima_data(2)]) as fed:
        for owner in fed.owners.values():
            owner.start()
        do1 = fed.owners[DO1]
        do1.wait_serving()
        inbox = fed.inbox(DO1)
        junk = f"{uuid.uuid4().hex}.msg"
        (inbox / junk).write_bytes(b"SYFTFLWR not a message at all")
        (inbox / "notes.txt").write_text("a file that is no message")
        done = fed.aggregate("--timeout", "30")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)

        assert done.returncode == 0, f"{done}\n{fed.logs()}"  # the node served on
        assert do1.run.status == "completed"
        entries = [e for e in do1.admin.audit_log() if e["event"] == "messages_refused"]
        assert len(entries) == 1, do1.admin.audit_log()
        entry = entries[0]
        assert entry["job_id"] == do1.job_uid and entry["run"] == do1.run.run_number
        assert entry["count"] == 2
        assert {r["file"] for r in entry["refusals"]} == {junk, "notes.txt"}
        assert all(r["app"] == fed.app_name and r["reason"] for r in entry["refusals"])
        # the other data owner refused nothing, and says so by saying nothing
        do2_log = fed.owners[DO2].admin.audit_log()
        assert not [e for e in do2_log if e["event"] == "messages_refused"]
