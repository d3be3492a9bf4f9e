"""RunMonitor: the observer that records a run as JSON lines and as Prometheus metrics.

Every call becomes one line of ``events.jsonl`` (appended and flushed at once, so a reader can
tail the file) with ``ts`` (epoch seconds) and ``kind``:

=============  =========================================================
kind           other fields
=============  =========================================================
run_start      run_id, app, datasites
round_start    round, datasites
message_sent   datasite, round, nbytes
reply          datasite, round, latency_s, nbytes, error
missing        datasite, round, waited_s
round_end      round, answered, failed ({email: reason})
run_end        ok, failures ({email: reason})
=============  =========================================================

:func:`syft_flwr.monitor.runs.summarize_events` reads it back.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from syft_flwr.monitor.metrics import (
    ParticipantCollector,
    RunMetrics,
    start_metrics_server,
    stop_metrics_server,
)
from syft_flwr.monitor.observer import NullObserver
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER
from syft_flwr.monitor.runs import register_run, run_events_path
from syft_flwr.network.layout import Network


class RunMonitor(NullObserver):
    """Record one run: ``events_path`` (JSON lines) and metrics in ``self.registry``.

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
    ):
        self.events_path = Path(events_path)
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = RunMetrics(self.registry)
        self.network = network
        if network is not None:
            self.registry.register(ParticipantCollector(network, offline_after=offline_after))
        self._lock = threading.Lock()
        self._round_started: dict[int, float] = {}
        self._rounds_done: set[int] = set()
        self._counted: set[tuple[int, str]] = set()  # (round, email) already counted as failed
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self.run_id: int | None = None

    # -- events file ------------------------------------------------------------------------
    def _emit(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"ts": time.time(), "kind": kind, **fields}, default=str) + "\n"
        with self._lock, self.events_path.open("a", encoding="utf-8") as fh:
            fh.write(line)  # one write of a whole line; flushed when the file closes

    # -- observer -----------------------------------------------------------------------------
    def run_started(self, run_id: int, app_name: str, datasites: list[str]) -> None:
        self.run_id = run_id
        self.metrics.run_info.labels(run_id=str(run_id), app=app_name).set(1)
        self.metrics.run_finished.set(0)
        self.metrics.run_succeeded.set(0)
        self.metrics.rounds_completed.set(0)
        for email in datasites:  # make the per-datasite series exist from the start
            self.metrics.messages_sent.labels(datasite=email)
            self.metrics.replies_received.labels(datasite=email)
        self._emit("run_start", run_id=run_id, app=app_name, datasites=list(datasites))

    def round_started(self, round: int, datasites: list[str]) -> None:
        self._round_started.setdefault(round, time.monotonic())
        self.metrics.current_round.set(round)
        self._emit("round_start", round=round, datasites=list(datasites))

    def message_sent(self, email: str, round: int, nbytes: int) -> None:
        self.metrics.messages_sent.labels(datasite=email).inc()
        self.metrics.bytes_sent.labels(datasite=email).inc(max(0, nbytes))
        self._emit("message_sent", datasite=email, round=round, nbytes=nbytes)

    def reply_received(
        self, email: str, round: int, latency_s: float, nbytes: int, error: str | None
    ) -> None:
        m = self.metrics
        m.replies_received.labels(datasite=email).inc()
        m.bytes_received.labels(datasite=email).inc(max(0, nbytes))
        m.reply_latency.labels(datasite=email).observe(max(0.0, latency_s))
        if error:
            m.failures.labels(datasite=email, kind="error").inc()
            self._counted.add((round, email))
        self._emit(
            "reply", datasite=email, round=round, latency_s=latency_s, nbytes=nbytes, error=error
        )

    def datasite_missing(self, email: str, round: int, waited_s: float) -> None:
        self.metrics.failures.labels(datasite=email, kind="missing").inc()
        self._counted.add((round, email))
        self._emit("missing", datasite=email, round=round, waited_s=waited_s)

    def round_finished(self, round: int, answered: list[str], failed: dict[str, str]) -> None:
        for email in failed:
            if (round, email) not in self._counted:
                self.metrics.failures.labels(datasite=email, kind="failed").inc()
                self._counted.add((round, email))
        self._rounds_done.add(round)
        self.metrics.rounds_completed.set(len(self._rounds_done))
        started = self._round_started.get(round)
        if started is not None:
            self.metrics.round_duration.set(time.monotonic() - started)
        self._emit("round_end", round=round, answered=list(answered), failed=dict(failed))

    def run_finished(self, ok: bool, failures: dict[str, str]) -> None:
        self.metrics.run_finished.set(1)
        self.metrics.run_succeeded.set(1 if ok and not failures else 0)
        self._emit("run_end", ok=bool(ok), failures=dict(failures))

    # -- metrics server -----------------------------------------------------------------------
    @property
    def rounds_completed(self) -> int:
        return len(self._rounds_done)

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
        """Stop the metrics server, if one was started."""
        if self._server is not None:
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
