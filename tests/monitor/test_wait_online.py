"""``main.py --active --wait-online``: real processes, the datasites' jobs started after the
aggregator. It waits for them (progress lines naming each), then the run succeeds."""

from __future__ import annotations

import time
from pathlib import Path

from syft_flwr.monitor import read_participant
from tests.faults.helpers import TINY_APP, federation, tiny_data, wait_for
from tests.support import DATASITES

DO1, DO2 = DATASITES


def test_the_aggregator_waits_for_datasites_started_after_it(tmp_path: Path) -> None:
    with federation(tmp_path, TINY_APP, tiny_data(tmp_path)) as fed:
        aggregator = fed.start_aggregator("--wait-online", "60", "--timeout", "30")
        err = tmp_path / "aggregator.err"  # where the federation sends its stderr

        def said(text: str) -> bool:
            if aggregator.poll() is not None:
                raise AssertionError(f"the aggregator ended early:\n{err.read_text()}")
            return text in err.read_text(errors="replace")

        # The data owners' sessions (in this process) are online, but serve nothing yet.
        wait_for(lambda: said("waiting for 2/2 datasites"), "the aggregator to wait", 60)
        fed.owners[DO1].start()
        wait_for(lambda: said(f"waiting for 1/2 datasites: {DO2}"), f"only {DO2} missing", 60)
        time.sleep(3)  # do2's data owner takes a few seconds more
        assert aggregator.poll() is None, "the aggregator gave up instead of waiting"
        fed.owners[DO2].start()

        done = fed.finish(aggregator)
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        lines = done.stderr.splitlines()
        waiting = [line for line in lines if "waiting for" in line]
        assert f"{DO2} (online as data owner, not serving the app yet)" in waiting[0]
        assert any(f"waiting for 1/2 datasites: {DO2}" in line for line in waiting)
        assert any("all 2 datasites are online" in line for line in lines)
        assert "still offline after" not in done.stderr
        assert (fed.project / "result.json").is_file()
        for owner in fed.owners.values():
            assert owner.admin.job.get(uid=owner.job_uid).status == "completed"

        # the jobs' heartbeats went offline: the owners' sessions publish theirs again
        for email in DATASITES:
            wait_for(
                lambda e=email: read_participant(fed.network, e).role == "data owner",
                f"{email}'s session heartbeat to resume",
                10,
            )
