"""RunMonitor: the subscriber that records a run as JSON lines and as Prometheus metrics.

Every event of the run (:mod:`syft_flwr.events`) becomes one line of ``events.jsonl``,
appended in one write so a reader can tail the file: :func:`~syft_flwr.events.event_to_json`,
i.e. ``ts`` (epoch seconds), ``kind`` and the event's fields:

=============  =============================================================================
kind           other fields
=============  =============================================================================
run_start      run_id, app, datasites
round_start    round, datasites
message_sent   datasite, round, nbytes
reply          datasite, round, latency_s, nbytes, error
missing        datasite, round, waited_s
round_end      round, answered, failed ({email: reason}), exchange, server_round,
               message_types, sent_to, errors ({email: {code, reason}}), missing,
               timeout_s, duration_s
round_metrics  round, metrics ({name: value}: what the ServerApp reported)
refused        path, reason, refusal, sender, set_aside
late_reply     datasite, why
run_end        ok, failures ({email: reason})
=============  =============================================================================

:func:`syft_flwr.monitor.runs.summarize_events` reads it back.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loguru import logger
from prometheus_client import CollectorRegistry

from syft_flwr.errors import UsageError
from syft_flwr.events import (
    DatasiteMissing,
    Event,
    FileRefused,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundMetrics,
    RoundStarted,
    RunFinished,
    RunStarted,
    count_rounds,
    event_to_json,
)
from syft_flwr.monitor.metrics import (
    ParticipantCollector,
    RoundClock,
    RunMetrics,
    start_metrics_server,
    stop_metrics_server,
)
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER
from syft_flwr.monitor.runs import register_run, run_events_path
from syft_flwr.network.files import LineLog
from syft_flwr.network.layout import Network

#: how long a finished run's metrics stay served for a last scrape (three of the shipped
#: config's 5 s scrape intervals), unless one comes sooner
SCRAPE_GRACE = 15.0
SCRAPE_GRACE_ENV = "SYFT_FLWR_METRICS_GRACE"


def scrape_grace_from_env() -> float:
    """``$SYFT_FLWR_METRICS_GRACE`` seconds, or :data:`SCRAPE_GRACE`."""
    text = os.environ.get(SCRAPE_GRACE_ENV, "").strip()
    if not text:
        return SCRAPE_GRACE
    try:
        return max(0.0, float(text))
    except ValueError:
        raise UsageError(f"{SCRAPE_GRACE_ENV} must be a number of seconds, not {text!r}") from None


class RunMonitor:
    """Record one run: ``events_path`` (JSON lines) and metrics in ``self.registry``.

    A :class:`~syft_flwr.events.Subscriber`: give it to the grid (``subscribers=[monitor]``).

    Pass ``network`` to also export every datasite's heartbeat age and online state, read
    from the network at scrape time. One RunMonitor per registry.
    """

    def __init__(
        self,
        events_path: Path,
        *,
        registry: CollectorRegistry | None = None,
        network: Network | None = None,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
        scrape_grace: float | None = None,
    ):
        self.events_path = Path(events_path)
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: LineLog | None = None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RunMetrics(self.registry)
        self.clock = RoundClock()
        self.registry.register(self.clock)
        self.scrape_grace = scrape_grace_from_env() if scrape_grace is None else scrape_grace
        self._finished = False
        self.network = network
        if network is not None:
            self.registry.register(ParticipantCollector(network, offline_after=offline_after))
        self._lock = threading.Lock()
        self._round_started_at: dict[int, float] = {}
        self._exchanges: list[int | None] = []  # server_round of each finished exchange
        self._counted: set[tuple[int, str]] = set()  # (round, email) already counted as failed
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.run_id: int | None = None
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RoundStarted: self._round_started,
            MessageSent: self._message_sent,
            ReplyReceived: self._reply_received,
            DatasiteMissing: self._datasite_missing,
            RoundFinished: self._round_finished,
            RoundMetrics: self._round_metrics,
            FileRefused: self._file_refused,
            RunFinished: self._run_finished,
        }

    # -- subscriber ---------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """Update the metrics, then append the event to the events file."""
        handler = self._handlers.get(type(event))
        with self._lock:
            if handler is not None:
                handler(event)
            if self._log is None:  # kept open: a run of a thousand datasites has many events
                self._log = LineLog(self.events_path)
            self._log.append(event_to_json(event))

    def _run_started(self, event: RunStarted) -> None:
        self.run_id = event.run_id
        self.metrics.run_info.labels(run_id=str(event.run_id), app=event.app).set(1)
        self.metrics.run_finished.set(0)
        self.metrics.run_succeeded.set(0)
        self.metrics.rounds_completed.set(0)
        for email in event.datasites:  # make the per-datasite series exist from the start
            self.metrics.messages_sent.labels(datasite=email)
            self.metrics.replies_received.labels(datasite=email)

    def _round_started(self, event: RoundStarted) -> None:
        self._round_started_at.setdefault(event.round, time.monotonic())
        self.metrics.current_round.set(event.round)
        self.clock.started()
        if event.timeout_s > 0:
            self.metrics.round_timeout.set(event.timeout_s)

    def _message_sent(self, event: MessageSent) -> None:
        self.metrics.messages_sent.labels(datasite=event.datasite).inc()
        self.metrics.bytes_sent.labels(datasite=event.datasite).inc(max(0, event.nbytes))

    def _reply_received(self, event: ReplyReceived) -> None:
        m, email = self.metrics, event.datasite
        m.replies_received.labels(datasite=email).inc()
        m.bytes_received.labels(datasite=email).inc(max(0, event.nbytes))
        m.reply_latency.labels(datasite=email).observe(max(0.0, event.latency_s))
        if event.error:
            m.failures.labels(datasite=email, kind="error").inc()
            self._counted.add((event.round, email))

    def _datasite_missing(self, event: DatasiteMissing) -> None:
        self.metrics.failures.labels(datasite=event.datasite, kind="missing").inc()
        self._counted.add((event.round, event.datasite))

    def _round_finished(self, event: RoundFinished) -> None:
        for email in event.failed:
            if (event.round, email) not in self._counted:
                self.metrics.failures.labels(datasite=email, kind="failed").inc()
                self._counted.add((event.round, email))
        self._exchanges.append(event.server_round)
        self.clock.finished()
        self.metrics.rounds_completed.set(count_rounds(self._exchanges))
        started = self._round_started_at.get(event.round)
        if started is not None:
            self.metrics.round_duration.set(time.monotonic() - started)

    def _round_metrics(self, event: RoundMetrics) -> None:
        m = self.metrics
        for name, value in event.metrics.items():
            m.round_metric.labels(metric=name, round=str(event.round)).set(value)
            m.training_metric.labels(metric=name).set(value)
        m.training_round.set(event.round)

    def _file_refused(self, event: FileRefused) -> None:
        self.metrics.refused_files.labels(refusal=event.refusal).inc()

    def _run_finished(self, event: RunFinished) -> None:
        self.metrics.run_finished.set(1)
        self.metrics.run_succeeded.set(1 if event.ok and not event.failures else 0)
        self._finished = True
        self.clock.final()

    # -- metrics server -----------------------------------------------------------------------
    @property
    def rounds_completed(self) -> int:
        return count_rounds(self._exchanges)

    @property
    def metrics_port(self) -> int | None:
        """The port the metrics are served on, or None."""
        return self._server.server_port if self._server is not None else None

    def serve_metrics(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve this run's metrics at ``http://addr:port/metrics``; returns the bound port."""
        if self._server is None:
            self._server, self._server_thread = start_metrics_server(self.registry, port, addr)
        return self._server.server_port

    def close(self) -> None:
        """Close the events file; stop the metrics server, if one was started, once a scrape
        has read the run's final values (at most :attr:`scrape_grace` seconds after the run
        ended: a run shorter than the scrape interval is still seen)."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
        if self._server is not None:
            if self._finished and self.scrape_grace > 0 and not self.clock.final_scraped.is_set():
                logger.info(
                    f"keeping the metrics on port {self.metrics_port} up until a scrape reads "
                    f"the final values (at most {self.scrape_grace:g} s, ${SCRAPE_GRACE_ENV})"
                )
                if not self.clock.final_scraped.wait(self.scrape_grace):
                    logger.info("no scrape of the final metrics came; stopping their server")
            stop_metrics_server(self._server, self._server_thread)
            self._server = self._server_thread = None

    def __enter__(self) -> RunMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def monitor_run(
    network: Network,
    aggregator_email: str,
    run_id: int,
    app_name: str,
    project_dir: Path,
    *,
    metrics_port: int | None = None,
    metrics_addr: str = "127.0.0.1",
) -> RunMonitor:
    """Everything the aggregator needs to record a run, in one call.

    Creates ``<project>/runs/<run_id>/events.jsonl``, a RunMonitor writing it (with the
    network's heartbeat metrics), registers the run for :func:`list_runs` and the dashboard,
    and serves the metrics if ``metrics_port`` is given (0: a free port; see
    ``monitor.metrics_port``). Call ``monitor.close()`` when the run is over.
    """
    events = run_events_path(project_dir, run_id)
    monitor = RunMonitor(events, network=network)
    register_run(network, aggregator_email, run_id, app_name, project_dir, events)
    if metrics_port is not None:
        monitor.serve_metrics(metrics_port, metrics_addr)
    return monitor
