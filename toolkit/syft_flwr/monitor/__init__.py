"""Seeing the federation: heartbeats, participants, a run's events and metrics, a dashboard.

- :class:`Heartbeat`: a party publishes liveness and load in ``public/status.json``;
  :class:`OwnerHeartbeat` is the one a data owner's admin sessions share.
- :func:`list_participants`: every datasite with its online state; :func:`wait_for_datasites`
  waits for the run's datasites before round 1.
- Subscribers of the run's events (:mod:`syft_flwr.events`, published by ``DatasiteGrid``):
  :class:`RunMonitor` writes ``runs/<run_id>/events.jsonl`` and Prometheus metrics;
  :class:`HeartbeatSubscriber` keeps the aggregator's heartbeat on the current round.
- :func:`register_run` / :func:`list_runs` find runs and summarise their events.
- :func:`serve_dashboard`: the live web page; :func:`format_status`: the terminal table.

The names are imported on first use (PEP 562), so that a heartbeat does not pull in
prometheus_client and the HTTP server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "DashboardServer": "dashboard",
    "serve_dashboard": "dashboard",
    "Heartbeat": "heartbeat",
    "HeartbeatSubscriber": "heartbeat",
    "OwnerHeartbeat": "presence",
    "join_owner_heartbeat": "presence",
    "ParticipantCollector": "metrics",
    "RunMetrics": "metrics",
    "start_metrics_server": "metrics",
    "stop_metrics_server": "metrics",
    "Participant": "participants",
    "list_participants": "participants",
    "read_participant": "participants",
    "wait_for_datasites": "participants",
    "RunMonitor": "run_monitor",
    "monitor_run": "run_monitor",
    "DatasiteStats": "runs",
    "RoundInfo": "runs",
    "RunInfo": "runs",
    "get_run": "runs",
    "list_runs": "runs",
    "read_events": "runs",
    "register_run": "runs",
    "run_dir": "runs",
    "run_events_path": "runs",
    "dashboard_main": "status",
    "format_runs": "status",
    "format_status": "status",
    "status_main": "status",
}

__all__ = [
    "DashboardServer",
    "DatasiteStats",
    "Heartbeat",
    "HeartbeatSubscriber",
    "OwnerHeartbeat",
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
    "join_owner_heartbeat",
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


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from syft_flwr.monitor.dashboard import DashboardServer, serve_dashboard
    from syft_flwr.monitor.heartbeat import Heartbeat, HeartbeatSubscriber
    from syft_flwr.monitor.metrics import (
        ParticipantCollector,
        RunMetrics,
        start_metrics_server,
        stop_metrics_server,
    )
    from syft_flwr.monitor.participants import (
        Participant,
        list_participants,
        read_participant,
        wait_for_datasites,
    )
    from syft_flwr.monitor.presence import OwnerHeartbeat, join_owner_heartbeat
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
