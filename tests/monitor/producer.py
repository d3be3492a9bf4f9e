"""A live producer for the monitor tests: a thread that plays a federation round by round.

It publishes real heartbeats for the aggregator and the datasites, registers a run, feeds a
real RunMonitor the events DatasiteGrid publishes, and drops a PNG into the project's figures/
each round. (The lead's integration tests drive the monitor from a real simulation.)
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syft_flwr.crypto import ensure_keys
from syft_flwr.events import (
    DatasiteMissing,
    EventBus,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundMetrics,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from syft_flwr.monitor import Heartbeat, HeartbeatSubscriber, monitor_run
from syft_flwr.network.layout import Network
from tests.support import AGGREGATOR, DATASITES


def tiny_png(width: int = 24, height: int = 16, rgb: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    """A valid PNG of one colour, without importing an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def round_metrics(rnd: int) -> dict[str, float]:
    """What a training run might report for round ``rnd``."""
    return {"loss": 0.7 / rnd, "accuracy": 0.6 + 0.04 * rnd, "auc": 0.7 + 0.03 * rnd}


@dataclass
class LiveProducer:
    network: Network
    project_dir: Path
    rounds: int = 3
    round_delay: float = 0.2
    run_id: int = 4242
    app_name: str = "fed-demo"
    aggregator: str = AGGREGATOR
    datasites: list[str] = field(default_factory=lambda: list(DATASITES))
    fail: dict[int, str] = field(default_factory=dict)  # round -> datasite that goes missing
    heartbeat_interval: float = 0.2
    hold: threading.Event = field(default_factory=threading.Event)  # set: finish the run
    with_heartbeats: bool = True
    write_figure: Callable[[Path, int], None] | None = None  # (figures dir, round); default: PNG
    with_metrics: bool = False  # publish loss/accuracy/auc per round, as the FL app reports

    def __post_init__(self) -> None:
        self.monitor = monitor_run(
            self.network, self.aggregator, self.run_id, self.app_name, self.project_dir
        )
        self.events_path = self.monitor.events_path
        self.heartbeats = []
        if self.with_heartbeats:
            roles = [(self.aggregator, "aggregator")] + [(e, "datasite") for e in self.datasites]
            for email, _ in roles:  # a heartbeat is signed by its party
                ensure_keys(self.network, email, durable=False)
            self.heartbeats = [
                Heartbeat(self.network, email, role, interval=self.heartbeat_interval)
                for email, role in roles
            ]
        # what DatasiteGrid would publish to: the run monitor, and the aggregator's heartbeat
        agg_heartbeat = (
            [HeartbeatSubscriber(self.heartbeats[0], job="agg")] if self.heartbeats else []
        )
        self.events = EventBus([self.monitor, *agg_heartbeat])
        self.round_done = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._play, name="live-producer", daemon=True)

    def start(self, *, hold_before_end: bool = False) -> LiveProducer:
        """Start; with ``hold_before_end`` the run stays 'running' until :attr:`hold` is set."""
        if not hold_before_end:
            self.hold.set()
        for hb in self.heartbeats:
            hb.start()
        self._thread.start()
        return self

    def _play(self) -> None:
        try:
            publish, sites = self.events.publish, tuple(self.datasites)
            publish(RunStarted(self.run_id, self.app_name, sites))
            for rnd in range(1, self.rounds + 1):
                publish(RoundStarted(rnd, sites))
                for hb in self.heartbeats[1:]:  # the datasites' jobs say which round they serve
                    hb.update(app=self.app_name, round=rnd, job="job-1")
                for i, email in enumerate(sites):
                    publish(MessageSent(email, rnd, 1000 + i))
                self.done.wait(self.round_delay)
                failed = {}
                for i, email in enumerate(sites):
                    if self.fail.get(rnd) == email:
                        publish(DatasiteMissing(email, rnd, self.round_delay))
                        failed[email] = "no reply within the timeout"
                    else:
                        publish(ReplyReceived(email, rnd, 0.05 * (i + 1), 500 + i, None))
                answered = tuple(e for e in sites if e not in failed)
                figures = self.project_dir / "figures"
                figures.mkdir(parents=True, exist_ok=True)
                if self.write_figure is not None:
                    self.write_figure(figures, rnd)
                else:
                    png = tiny_png(rgb=(40 * rnd % 255, 90, 200))
                    (figures / f"round_{rnd}.png").write_bytes(png)
                publish(RoundFinished(rnd, answered, failed))
                if self.with_metrics:
                    publish(RoundMetrics(rnd, round_metrics(rnd)))
                self.round_done.set()
            self.hold.wait(60)
            failures = {e: "missed a round" for e in self.fail.values()}
            publish(RunFinished(not failures, failures))
        except BaseException as exc:  # surfaced by stop()
            self.error = exc
        finally:
            self.done.set()

    def wait(self, timeout: float = 30.0) -> None:
        assert self.done.wait(timeout), "the live producer did not finish in time"
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.hold.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=30)
        for hb in self.heartbeats:
            hb.stop()
        self.monitor.close()
        if self.error is not None:
            raise self.error
