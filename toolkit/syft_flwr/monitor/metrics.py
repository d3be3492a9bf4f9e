"""Prometheus metrics of a run, in a registry of its own, and a tiny server to scrape them.

Each :class:`~syft_flwr.monitor.run_monitor.RunMonitor` owns a ``CollectorRegistry`` (never the
process-wide default registry: a simulation may run several federations in one process).
Heartbeat ages are read from the network at scrape time by :class:`ParticipantCollector`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, list_participants
from syft_flwr.network.layout import Network

PREFIX = "syft_flwr"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RunMetrics:
    """The metrics one run updates (see monitoring/README.md for the list)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        r = registry
        self.run_info = Gauge(
            f"{PREFIX}_run_info",
            "The run this process drives (value 1)",
            ["run_id", "app"],
            registry=r,
        )
        self.rounds_completed = Gauge(
            f"{PREFIX}_rounds_completed", "Rounds of the run that have finished", registry=r
        )
        self.current_round = Gauge(f"{PREFIX}_current_round", "Round in progress", registry=r)
        self.run_finished = Gauge(
            f"{PREFIX}_run_finished", "1 once the run has ended, else 0", registry=r
        )
        self.run_succeeded = Gauge(
            f"{PREFIX}_run_succeeded", "1 if the run ended without failures, else 0", registry=r
        )
        self.round_duration = Gauge(
            f"{PREFIX}_last_round_duration_seconds",
            "Duration of the last finished round",
            registry=r,
        )
        self.messages_sent = Counter(
            f"{PREFIX}_messages_sent", "Messages sent to a datasite", ["datasite"], registry=r
        )
        self.bytes_sent = Counter(
            f"{PREFIX}_sent_bytes",
            "Bytes of messages sent to a datasite",
            ["datasite"],
            registry=r,
        )
        self.replies_received = Counter(
            f"{PREFIX}_replies_received",
            "Replies received from a datasite",
            ["datasite"],
            registry=r,
        )
        self.bytes_received = Counter(
            f"{PREFIX}_received_bytes",
            "Bytes of replies received from a datasite",
            ["datasite"],
            registry=r,
        )
        self.reply_latency = Histogram(
            f"{PREFIX}_reply_latency_seconds",
            "Seconds from sending a message to its reply",
            ["datasite"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.training_metric = Gauge(
            f"{PREFIX}_training_metric",
            "The latest value the ServerApp reported of a training metric (loss, accuracy, auc)",
            ["metric"],
            registry=r,
        )
        self.training_round = Gauge(
            f"{PREFIX}_training_metric_round",
            "The server round of the latest training metrics",
            registry=r,
        )
        self.round_metric = Gauge(
            f"{PREFIX}_round_metric",
            "A training metric of one server round (round 0: the initial model)",
            ["metric", "round"],
            registry=r,
        )
        self.refused_files = Counter(
            f"{PREFIX}_refused_files",
            "Files the aggregator refused and set aside, by refusal kind (bad-mac, replay, ...)",
            ["refusal"],
            registry=r,
        )
        self.round_timeout = Gauge(
            f"{PREFIX}_round_timeout_seconds",
            "How long the current (or last) round waits for replies",
            registry=r,
        )
        self.failures = Counter(
            f"{PREFIX}_failures",
            "Failures per datasite; kind: error (the reply carried an error), missing (no reply "
            "in time), failed (reported failed at the end of a round)",
            ["datasite", "kind"],
            registry=r,
        )


class RoundClock(Collector):
    """``syft_flwr_round_elapsed_seconds``, computed when scraped: the round in progress's age,
    or the last round's duration once it is over. Every scrape after :meth:`final` sets
    :attr:`final_scraped`: the final values have been read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: float | None = None  # time.monotonic() when the last round started
        self._running = False
        self._last = 0.0
        self._final = False
        self.final_scraped = threading.Event()

    def started(self) -> None:
        with self._lock:
            self._started, self._running = time.monotonic(), True

    def finished(self) -> None:
        """An exchange of the round ended (a round may have two: train, then evaluate)."""
        with self._lock:
            if self._started is not None:
                self._last = time.monotonic() - self._started
            self._running = False

    def final(self) -> None:
        """The run is over: the next scrape reads its final values."""
        with self._lock:
            self._final = True

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            f"{PREFIX}_round_elapsed_seconds",
            "Seconds the round in progress has run (the last round's duration between rounds)",
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        with self._lock:
            running = self._running and self._started is not None
            value = time.monotonic() - self._started if running else self._last  # type: ignore[operator]
            if self._final:
                self.final_scraped.set()
        family.add_metric([], value)
        yield family


class ParticipantCollector(Collector):
    """Heartbeat age and online state of every datasite, read from the network when scraped."""

    def __init__(
        self,
        network: Network,
        *,
        offline_after: float = DEFAULT_OFFLINE_AFTER,
        datasites: list[str] | None = None,
    ):
        self.network = network
        self.offline_after = offline_after
        self.datasites = datasites  # None: every datasite on the network

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        age = GaugeMetricFamily(
            f"{PREFIX}_heartbeat_age_seconds",
            "Seconds since the datasite's last heartbeat (absent if it never sent one)",
            labels=["datasite"],
        )
        online = GaugeMetricFamily(
            f"{PREFIX}_datasite_online",
            "1 if the datasite's heartbeat is fresh and says online, else 0",
            labels=["datasite"],
        )
        return age, online

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        age, online = self._families()
        wanted = set(self.datasites) if self.datasites is not None else None
        for p in list_participants(self.network, offline_after=self.offline_after):
            if wanted is not None and p.email not in wanted:
                continue
            if p.heartbeat_age is not None:
                age.add_metric([p.email], p.heartbeat_age)
            online.add_metric([p.email], 1.0 if p.online else 0.0)
        yield age
        yield online


def start_metrics_server(registry: CollectorRegistry, port: int = 0, addr: str = "127.0.0.1"):
    """Serve ``registry`` at ``http://addr:port/metrics`` in a daemon thread.

    Returns ``(server, thread)``; ``server.server_port`` is the bound port (useful with
    ``port=0``). Stop it with :func:`stop_metrics_server`.
    """
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return server, thread


def stop_metrics_server(server: Any, thread: threading.Thread | None = None) -> None:
    """Shut down a server started by :func:`start_metrics_server` and free its port."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)
