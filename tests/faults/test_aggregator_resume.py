"""The aggregator dies (SIGKILL) in the middle of a run and continues with ``--resume``."""

from __future__ import annotations

import json
import os
import signal

from tests.faults.conftest import FLRun, assert_same_run
from tests.faults.helpers import FL_APP, FL_CONFIG, federation, leftovers, pima_data, wait_for

ROUNDS = FL_CONFIG["num-server-rounds"]


def test_a_killed_aggregator_resumes_to_the_model_of_an_uninterrupted_run(
    tmp_path, fl_reference: FLRun
) -> None:
    """The aggregator is SIGKILLed while round 2 trains, then the data scientist runs
    ``python main.py --active --resume``.

    The data owners' jobs keep running across the restart, which is what a data owner does:
    nothing. An approved job serves until the aggregator's stop message (or its idle
    timeout), so the data scientist's crash needs no action, and no new approval, on their
    side. The replies they send to the dead aggregator's requests are ignored as late by the
    resumed one.
    """
    with federation(tmp_path, FL_APP, [pima_data(1), pima_data(2)], config=FL_CONFIG) as fed:
        for owner in fed.owners.values():
            owner.start()
        first = fed.start_aggregator("--timeout", "60", name="first")
        wait_for(
            lambda: (fed.checkpoint_round() or 0) >= 1 or first.poll() is not None,
            "round 1 to complete",
        )
        os.kill(first.pid, signal.SIGKILL)
        killed = fed.finish(first)
        interrupted_after = fed.checkpoint_round()
        assert killed.returncode == -signal.SIGKILL, killed
        assert interrupted_after is not None and interrupted_after < ROUNDS, killed
        assert not any(owner.run.done for owner in fed.owners.values()), fed.logs()

        resumed = fed.aggregate("--resume", "--timeout", "60", name="resumed")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)

        assert resumed.returncode == 0, f"{resumed}\n{fed.logs()}"
        assert f"resuming after round {interrupted_after} of {ROUNDS}" in resumed.stderr
        assert "run completed: every datasite answered every round" in resumed.stdout
        metrics = json.loads((fed.weights / "metrics.json").read_text())
        assert [m["round"] for m in metrics] == list(range(ROUNDS + 1))  # none lost or twice
        assert json.loads((fed.weights / "checkpoint.json").read_text())["round"] == ROUNDS
        assert_same_run(FLRun.load(fed.weights), fl_reference)
        for owner in fed.owners.values():
            assert [r.status for r in owner.runs] == ["completed"], fed.logs()
            assert not [n for n in leftovers(fed.inbox(owner.email)) if n.endswith(".msg")]
