"""A live dashboard of the federation, served by the standard library (no web framework).

``GET /``                    the page (inline CSS/JS; refreshes itself every second)
``GET /api/participants``    datasites with online state, heartbeat age and load
``GET /api/runs``            registered runs, newest first (summaries)
``GET /api/runs/<run_id>``   one run: per-round progress and per-datasite latency
``GET /api/figures``         the latest figures of the runs' projects
``GET /figures/<run_id>/<name>``  one of those figures (only files inside that run's figures/)
``GET /metrics``             Prometheus text: every datasite's heartbeat age and online state

It binds to 127.0.0.1 by default: the network's metadata is for the people on this machine.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from syft_flwr.logs import log_failure
from syft_flwr.monitor.dashboard_page import PAGE
from syft_flwr.monitor.metrics import ParticipantCollector
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, list_participants
from syft_flwr.monitor.runs import RunInfo, get_run, latest_files, list_runs
from syft_flwr.network.layout import Network

FIGURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
FIGURES_PER_PROJECT = 12
FIGURES_TOTAL = 24
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'"
)


def figures_payload(runs: list[RunInfo]) -> list[dict[str, Any]]:
    """The newest figures, one listing per project folder (its newest run names them)."""
    seen: set[Path] = set()
    found = []
    for run in runs:  # newest first
        folder = run.figures_dir
        if folder in seen:
            continue
        seen.add(folder)
        for path in latest_files(folder, tuple(FIGURE_TYPES), FIGURES_PER_PROJECT):
            st = path.stat()
            found.append(
                {
                    "run_id": run.run_id,
                    "app_name": run.app_name,
                    "name": path.name,
                    "url": f"/figures/{run.run_id}/{path.name}?v={st.st_mtime_ns}",
                    "mtime": st.st_mtime,
                    "size": st.st_size,
                }
            )
    found.sort(key=lambda f: f["mtime"], reverse=True)
    return found[:FIGURES_TOTAL]


def resolve_figure(network: Network, run_id: str, name: str, **kwargs: Any) -> Path | None:
    """The file ``name`` directly inside run ``run_id``'s figures folder, or None.

    Refuses anything else: other folders, ``..``, hidden files, symlinks pointing out, other
    file types.
    """
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        return None
    if Path(name).suffix.lower() not in FIGURE_TYPES:
        return None
    run = get_run(network, run_id, **kwargs)
    if run is None:
        return None
    try:
        folder = run.figures_dir.resolve(strict=True)
        path = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if path.parent != folder or not path.is_file():
        return None
    return path


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "syft-flwr-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("dashboard: " + format % args)

    def _send(self, status: int, body: bytes, content_type: str, *, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = HTTPStatus.OK) -> None:
        body = json.dumps(data, default=str).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _not_found(self, what: str = "not found") -> None:
        self._json({"error": what}, HTTPStatus.NOT_FOUND)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        try:
            self._route(urlsplit(self.path).path)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bad request must not take the dashboard down
            log_failure(f"dashboard: {self.path} failed", exc)
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _route(self, path: str) -> None:
        network, offline_after = self.server.network, self.server.offline_after
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/api/participants":
            people = list_participants(network, offline_after=offline_after)
            self._json(
                {
                    "network": str(network.root),
                    "offline_after": offline_after,
                    "now": time.time(),
                    "participants": [p.to_dict() for p in people],
                }
            )
        elif path == "/api/runs":
            runs = list_runs(network, offline_after=offline_after)
            self._json({"runs": [r.to_dict(detail=False) for r in runs]})
        elif path.startswith("/api/runs/"):
            run_id = unquote(path.removeprefix("/api/runs/"))
            run = get_run(network, run_id, offline_after=offline_after)
            if run is None:
                self._not_found(f"no run {run_id!r} is registered on this network")
            else:
                self._json(run.to_dict(detail=True))
        elif path == "/api/figures":
            runs = list_runs(network, offline_after=offline_after)
            self._json({"figures": figures_payload(runs)})
        elif path.startswith("/figures/"):
            parts = unquote(path.removeprefix("/figures/")).split("/")
            found = None
            if len(parts) == 2:
                found = resolve_figure(network, parts[0], parts[1], offline_after=offline_after)
            if found is None:
                self._not_found("no such figure")
            else:
                content_type = FIGURE_TYPES[found.suffix.lower()]
                self._send(HTTPStatus.OK, found.read_bytes(), content_type, cache=True)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif path == "/healthz":
            self._json({"ok": True})
        else:
            self._not_found()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], network: Network, offline_after: float):
        self.network = network
        self.offline_after = offline_after
        self.registry = CollectorRegistry()
        self.registry.register(ParticipantCollector(network, offline_after=offline_after))
        super().__init__(address, _Handler)


@dataclass
class DashboardServer:
    """A running dashboard; ``url`` is where to open it, ``shutdown()`` stops it."""

    server: _Server
    thread: threading.Thread
    host: str

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/"

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def serve_dashboard(
    network: Network,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    offline_after: float = DEFAULT_OFFLINE_AFTER,
) -> DashboardServer:
    """Serve the dashboard of ``network`` in a daemon thread (``port=0``: a free port)."""
    try:
        server = _Server((host, port), network, offline_after)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror}; "
            "choose another --port (0 picks a free one)",
        ) from exc
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="syft-flwr-dashboard",
        daemon=True,
    )
    thread.start()
    return DashboardServer(server=server, thread=thread, host=host)
