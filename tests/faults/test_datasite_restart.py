"""A data owner re-runs its approved job after the job process was killed mid-round."""

from __future__ import annotations

import json

from tests.faults.conftest import FLRun, assert_same_run
from tests.faults.helpers import FL_APP, FL_CONFIG, federation, pima_data, wait_for
from tests.support import DATASITES

DO1, DO2 = DATASITES
#: messages each datasite answers in a 3-round run: the statistics query, the evaluation of
#: the initial model, then train + evaluate per round
MESSAGES_PER_DATASITE = 2 + 2 * 3


def test_a_restarted_datasite_serves_on_without_answering_anything_twice(
    tmp_path, fl_reference: FLRun
) -> None:
    """do2's job is SIGKILLed while round 2 trains; its data owner runs the approved job again
    (``run_private``) while the aggregator still waits for round 2 (``--timeout 60``). The
    new run answers the request the killed one left in the inbox, then the later rounds: the
    aggregator gets exactly one reply per message from do2, the run succeeds, and the model
    equals an uninterrupted run's."""
    with federation(tmp_path, FL_APP, [pima_data(1), pima_data(2)], config=FL_CONFIG) as fed:
        for owner in fed.owners.values():
            owner.start()
        aggregator = fed.start_aggregator("--timeout", "60")
        wait_for(
            lambda: (fed.checkpoint_round() or 0) >= 1 or aggregator.poll() is not None,
            "round 1 to complete",
        )
        do2 = fed.owners[DO2]
        do2.kill()
        assert fed.checkpoint_round() is not None and fed.checkpoint_round() < 3, (
            "the run ended before the kill: " + str(fed.finish(aggregator))
        )
        before = do2.answered_ids(fed.app_name, fed.network)
        do2.start()  # the data owner re-runs the approved job
        done = fed.finish(aggregator)
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)

        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        assert "run completed: every datasite answered every round" in done.stdout
        assert "late replies" not in done.stdout  # no reply was sent twice
        exchanges = [line for line in done.stdout.splitlines() if line.startswith("  ")]
        assert len(exchanges) == MESSAGES_PER_DATASITE, done.stdout
        assert all("2/2 answered" in line for line in exchanges), done.stdout

        answered = do2.answered_ids(fed.app_name, fed.network)
        assert len(answered) == len(set(answered))  # nothing answered twice
        # every message once, and the stop message (which the node also records)
        assert len(answered) in (MESSAGES_PER_DATASITE, MESSAGES_PER_DATASITE + 1)
        assert answered[: len(before)] == before  # the restarted run appended to the log
        assert 4 <= len(before) < MESSAGES_PER_DATASITE  # killed after round 1, before the end
        assert [r.returncode for r in do2.runs] == [-9, 0], fed.logs()
        assert [r.status for r in do2.runs] == ["failed", "completed"]
        assert fed.owners[DO1].run.status == "completed"

        metrics = json.loads((fed.weights / "metrics.json").read_text())
        for entry in metrics[1:]:
            assert entry["participants"] == sorted(DATASITES) and entry["failures"] == {}
        assert_same_run(FLRun.load(fed.weights), fl_reference)
