"""The aggregator's progress while it waits for replies: who answered, who is pending, the
time left. One line that updates in place on a terminal, log lines every few seconds
otherwise (a notebook, a log file). A subscriber of the run's events with a ticker thread.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from loguru import logger

from syft_flwr.events import (
    DatasiteMissing,
    Event,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundStarted,
    RunFinished,
)

#: names are shown up to this many; past it, counts only (a thousand datasites)
MAX_NAMES = 5


def _who(emails: list[str]) -> str:
    """The names when there are few, else how many."""
    return ", ".join(emails) if len(emails) <= MAX_NAMES else f"{len(emails)} datasites"


class WaitProgress:
    """Shows each wait of the aggregator: ``round 3: 1/2 answered; waiting for do2@...;
    112 s left``. ``stream`` is a terminal (default: stderr when it is one): one line,
    rewritten every ``tty_every`` seconds; otherwise a log line every ``log_every``."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty_every: float = 0.5,
        log_every: float = 10.0,
    ) -> None:
        stream = stream if stream is not None else sys.stderr
        self._tty = stream if _is_tty(stream) else None
        self._every = tty_every if self._tty is not None else log_every
        self._lock = threading.Lock()
        self._round = 0
        self._timeout = 0.0
        self._asked: list[str] = []
        self._answered: set[str] = set()
        self._deadline: float | None = None  # time.monotonic(); None: not waiting
        self._began = 0.0  # time.monotonic() of the exchange's first message
        self._shown = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- subscriber ---------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        with self._lock:
            match event:
                case RoundStarted():
                    self._round, self._timeout = event.round, event.timeout_s
                case MessageSent():
                    if self._deadline is None:  # the first message of an exchange
                        self._asked, self._answered = [], set()
                        self._began = time.monotonic()
                        self._deadline = self._began + (self._timeout or 0.0)
                        self._start()
                    self._round = event.round
                    self._asked.append(event.datasite)
                case ReplyReceived():
                    self._answered.add(event.datasite)
                case DatasiteMissing():
                    pass
                case RoundFinished():
                    self._deadline = None
                    self._timeout = event.timeout_s or self._timeout
                    self._clear()
                case RunFinished():
                    self._deadline = None
                    self._clear()
        self._wake.set()

    # -- the line -----------------------------------------------------------------------------
    def describe(self) -> str | None:
        """The current progress line, or None when nothing is awaited."""
        with self._lock:
            if self._deadline is None or not self._asked:
                return None
            pending = [e for e in self._asked if e not in self._answered]
            done = len(self._asked) - len(pending)
            line = f"round {self._round}: {done}/{len(self._asked)} answered"
            if pending:
                line += f"; waiting for {_who(pending)}"
            if self._timeout:
                line += f"; {max(0.0, self._deadline - time.monotonic()):.0f} s left"
            return line

    def _show(self) -> None:
        line = self.describe()
        if line is None:
            return
        if self._tty is not None:
            self._tty.write("\r\x1b[2K" + line)
            self._tty.flush()
            self._shown = True
        else:
            logger.info(line)

    def _clear(self) -> None:
        if self._tty is not None and self._shown:
            self._tty.write("\r\x1b[2K")
            self._tty.flush()
            self._shown = False

    # -- the ticker ---------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._tick, name="syft-flwr-progress", daemon=True
            )
            self._thread.start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            if self._tty is not None:  # redrawn at each event and every tick
                self._wake.wait(self._every)
                self._wake.clear()
            elif self._stop.wait(self._every):
                break
            if self._stop.is_set():
                break
            # a log line per interval of a wait, none for a wait shorter than the interval
            if self._tty is not None or time.monotonic() - self._began >= self._every:
                self._show()

    def close(self) -> None:
        """Stop the ticker and clear the line."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._clear()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
