"""The run report's verdict: a refused file is a warning unless it kept a datasite silent."""

from __future__ import annotations

import pytest

from syft_flwr import runtime
from syft_flwr.events import FileRefused, LateReply, MessageSent, RoundFinished
from syft_flwr.runtime import AggregatorOutcome
from syft_flwr.transport.report import ReplyError, RoundReport, RunReport
from tests.support import DATASITES

DO1, DO2 = DATASITES


def _report(*, answered: list[str], refused: int = 0) -> RunReport:
    report = RunReport()
    round_ = RoundReport(1, ["query"], 1, sent_to=list(DATASITES), answered=answered, timeout=5)
    round_.missing = [e for e in DATASITES if e not in answered]
    report.add_round(round_)
    for i in range(refused):
        report.add_quarantined(f"/inbox/forged-{i}", "bad MAC", "bad-mac", DO2)
    return report


def test_verdicts() -> None:
    clean = _report(answered=list(DATASITES))
    assert (clean.ok, clean.completed, clean.verdict) == (True, True, "OK")
    assert clean.summary().startswith("OK: 1 exchange\n")

    warned = _report(answered=list(DATASITES), refused=1)
    assert (warned.ok, warned.completed, warned.verdict) == (False, True, "OK WITH WARNINGS")
    assert warned.summary().startswith("OK WITH WARNINGS: 1 exchange\n")
    assert "refused (bad-mac) /inbox/forged-0: bad MAC" in warned.summary()
    assert warned.failures() == {}
    assert warned.to_dict()["verdict"] == "OK WITH WARNINGS"

    failed = _report(answered=[DO1], refused=1)  # the refused file was do2's only reply
    assert (failed.ok, failed.completed, failed.verdict) == (False, False, "FAILED")
    assert failed.summary().startswith("FAILED: 1 exchange\n")
    assert list(failed.failures()) == [DO2]

    errored = _report(answered=list(DATASITES))
    errored.rounds[0].errors[DO1] = ReplyError(0, "ValueError: boom")
    assert errored.verdict == "FAILED" and "ValueError" in errored.failures()[DO1]


def test_the_report_is_built_from_the_grid_events() -> None:
    """The grid subscribes its report: RoundFinished, FileRefused and LateReply make it."""
    report = RunReport()
    for event in (
        MessageSent(DO1, 1, 10),  # not the report's business
        RoundFinished(
            1,
            (DO1,),
            {DO2: "no reply within 5 s"},
            exchange=1,
            server_round=1,
            message_types=("query",),
            sent_to=tuple(DATASITES),
            missing=(DO2,),
            timeout_s=5,
        ),
        FileRefused("/inbox/forged-0", "bad MAC", "bad-mac", DO2),
        LateReply(DO2, "it timed out"),
    ):
        report.on_event(event)
    by_hand = _report(answered=[DO1], refused=1)
    by_hand.add_late(DO2)
    assert report.to_dict() == by_hand.to_dict()
    assert report.summary() == by_hand.summary()
    assert report.late_replies == [DO2] and report.refusals == {"bad-mac": 1}


@pytest.mark.parametrize(
    ("answered", "refused", "code", "verdict", "last_line"),
    [
        (DATASITES, 0, runtime.EXIT_OK, "OK:", "run completed: every datasite answered"),
        (DATASITES, 2, runtime.EXIT_OK, "OK WITH WARNINGS:", "run completed with warnings"),
        ([DO1], 1, runtime.EXIT_PARTIAL, "FAILED:", "FINISHED WITH FAILURES"),
    ],
)
def test_summary_and_exit_code_agree(
    capsys: pytest.CaptureFixture[str],
    answered: list[str],
    refused: int,
    code: int,
    verdict: str,
    last_line: str,
) -> None:
    report = _report(answered=answered, refused=refused)
    outcome = AggregatorOutcome(report=report, failures=report.failures())

    assert runtime.report_outcome(outcome) == code
    out, err = capsys.readouterr()
    assert out.startswith(verdict)
    assert last_line in (out if code == runtime.EXIT_OK else err)
    if refused and code == runtime.EXIT_OK:
        assert f"{refused} file(s) were refused" in out
    if code == runtime.EXIT_OK:
        assert "FAILED" not in out + err
