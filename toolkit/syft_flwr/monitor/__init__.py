"""Seeing the federation: heartbeats, participants, a run's events and metrics, a dashboard.

- :class:`Heartbeat`: a party publishes liveness and load in ``public/status.json``.
- :func:`list_participants`: every datasite with its online state.
- :class:`GridObserver` / :class:`NullObserver`: what ``DatasiteGrid`` reports during a run;
  :func:`wait_for_datasites` waits for the run's datasites before round 1.
- :class:`RunMonitor`: the observer that writes ``runs/<run_id>/events.jsonl`` and Prometheus
  metrics; :func:`register_run` / :func:`list_runs` find and summarise runs.
- :func:`serve_dashboard`: the live web page; :func:`format_status`: the terminal table.
"""

from syft_flwr.monitor.dashboard import DashboardServer, serve_dashboard
from syft_flwr.monitor.heartbeat import Heartbeat
from syft_flwr.monitor.metrics import (
    ParticipantCollector,
    RunMetrics,
    start_metrics_server,
    stop_metrics_server,
)
from syft_flwr.monitor.observer import (
    GridObserver,
    HeartbeatObserver,
    NullObserver,
    ObserverFanout,
    wait_for_datasites,
)
from syft_flwr.monitor.participants import Participant, list_participants, read_participant
from syft_flwr.monitor.run_monitor import RunMonitor, monitor_run
from syft_flwr.monitor.runs import (
    DatasiteStats,
    RoundInfo,
    RunInfo,
    get_run,
    list_runs,
    read_events,
    register_run,
    run_dir,
    run_events_path,
)
from syft_flwr.monitor.status import dashboard_main, format_runs, format_status, status_main

__all__ = [
    "DashboardServer",
    "DatasiteStats",
    "GridObserver",
    "Heartbeat",
    "HeartbeatObserver",
    "NullObserver",
    "ObserverFanout",
    "Participant",
    "ParticipantCollector",
    "RoundInfo",
    "RunInfo",
    "RunMetrics",
    "RunMonitor",
    "dashboard_main",
    "format_runs",
    "format_status",
    "get_run",
    "list_participants",
    "list_runs",
    "monitor_run",
    "read_events",
    "read_participant",
    "register_run",
    "run_dir",
    "run_events_path",
    "serve_dashboard",
    "start_metrics_server",
    "status_main",
    "stop_metrics_server",
    "wait_for_datasites",
]
