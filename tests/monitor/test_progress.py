"""The aggregator's progress while it waits: one updating line on a terminal, log lines else."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
from loguru import logger

from syft_flwr.events import MessageSent, ReplyReceived, RoundFinished, RoundStarted, RunFinished
from syft_flwr.monitor.progress import WaitProgress
from tests.transport.helpers import datasite, federation, query_message

DO1, DO2 = datasite(1), datasite(2)


class Terminal(io.StringIO):
    """What a terminal receives (it says it is one)."""

    def isatty(self) -> bool:
        return True


def _wait_for(progress: WaitProgress, emails: list[str], answered: list[str]) -> None:
    progress.on_event(RoundStarted(3, tuple(emails), timeout_s=120.0))
    for email in emails:
        progress.on_event(MessageSent(email, 3, 10))
    for email in answered:
        progress.on_event(ReplyReceived(email, 3, 0.1, 10))


def test_a_terminal_gets_one_line_updated_in_place() -> None:
    term = Terminal()
    progress = WaitProgress(term, tty_every=0.05)
    try:
        _wait_for(progress, [DO1, DO2], [DO1])
        line = progress.describe()
        assert line is not None and line.startswith(f"round 3: 1/2 answered; waiting for {DO2}; ")
        assert line.endswith(" s left") and 118 <= int(line.split("; ")[-1].split()[0]) <= 120
        time.sleep(0.3)
        shown = term.getvalue()
        assert shown.count("\r\x1b[2K") >= 2 and "\n" not in shown  # rewritten, never scrolled
        progress.on_event(RoundFinished(3, (DO1,), {DO2: "no reply"}, timeout_s=120.0))
        assert progress.describe() is None
        assert term.getvalue().endswith("\r\x1b[2K")  # the line is cleared when the round ends
    finally:
        progress.close()


def test_a_thousand_datasites_are_counted_not_named() -> None:
    progress = WaitProgress(Terminal(), tty_every=60)
    emails = [f"do{i}@openmined.org" for i in range(1000)]
    try:
        _wait_for(progress, emails, emails[:640])
        line = progress.describe()
        assert line is not None
        assert line.startswith("round 3: 640/1000 answered; waiting for 360 datasites; ")
        assert "@" not in line
        progress.on_event(RunFinished(True, {}))
        assert progress.describe() is None
    finally:
        progress.close()


def test_a_grid_waiting_for_a_silent_datasite_logs_its_progress(tmp_path: Path) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    progress = WaitProgress(io.StringIO(), log_every=0.4)  # not a terminal: log lines
    try:
        kwargs = {"grid_kwargs": {"subscribers": [progress]}}
        deltas = [[np.ones(2)], [np.ones(2)]]
        with federation(tmp_path, deltas, [1, 1], start=[1], timeout=1.5, **kwargs) as fed:
            replies = fed.grid.send_and_receive([query_message(fed.grid, e) for e in (DO1, DO2)])
            assert len(list(replies)) == 1
    finally:
        progress.close()
        logger.remove(sink)
    shown = [line for line in lines if line.startswith("round ")]
    assert shown, lines
    assert all("1/2 answered; waiting for " + DO2 in line for line in shown)
    assert all(DO1 not in line.split("waiting for")[1] for line in shown)
    assert int(shown[-1].split("; ")[-1].split()[0]) < int(shown[0].split("; ")[-1].split()[0]) + 1


def test_a_short_wait_logs_nothing() -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    progress = WaitProgress(io.StringIO(), log_every=1.0)
    try:
        _wait_for(progress, [DO1, DO2], [DO1, DO2])
        progress.on_event(RoundFinished(3, (DO1, DO2), {}))
        time.sleep(1.3)
    finally:
        progress.close()
        logger.remove(sink)
    assert not [line for line in lines if line.startswith("round ")]
