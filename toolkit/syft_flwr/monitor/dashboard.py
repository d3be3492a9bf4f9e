"""A live dashboard of the federation, served by the standard library (no web framework).

``GET /``                    the page (inline CSS/JS), updated by the server's pushes
``GET /api/stream?run=<id>`` server-sent events: a ``state`` event (participants with a short
                             CPU history, the network's mean CPU, runs, figures, the shown
                             run's rounds and training metrics) each time it changes
``GET /api/state``           the same state, once
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
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from syft_flwr.logs import log_failure
from syft_flwr.monitor.dashboard_page import PAGE
from syft_flwr.monitor.live import FIGURE_TYPES, Sampler, figures_payload
from syft_flwr.monitor.metrics import ParticipantCollector
from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, list_participants
from syft_flwr.monitor.runs import get_run, list_runs
from syft_flwr.network.layout import Network

#: a page that has not heard from the server for this long gets a keep-alive comment
KEEPALIVE = 15.0
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
__all__ = ["DashboardServer", "figures_payload", "resolve_figure", "serve_dashboard"]


def pick_run(runs: list[dict[str, Any]], wanted: str | None) -> str | None:
    """The run a page shows: the one it asked for, else a running one, else the newest."""
    ids = [r["run_id"] for r in runs]
    if wanted in ids:
        return wanted
    running = [r["run_id"] for r in runs if r["status"] in ("running", "starting")]
    return running[0] if running else (ids[0] if ids else None)


def resolve_figure(network: Network, run_id: str, name: str, **kwargs: Any) -> Path | None:
    """The file ``name`` directly inside run ``run_id``'s figures folder (or its own folder,
    ``runs/<run_id>/``: its training figure), or None.

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
    for where in (run.figures_dir, run.events_path.parent):
        try:
            folder = where.resolve(strict=True)
            path = (folder / name).resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if path.parent == folder and path.is_file():
            return path
    return None


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
            url = urlsplit(self.path)
            self.server.hits[url.path] += 1
            if url.path == "/api/stream":
                self._stream(parse_qs(url.query).get("run", [None])[0])
                return
            self._route(url.path)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a bad request must not take the dashboard down
            log_failure(f"dashboard: {self.path} failed", exc)
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _state(self, snapshot: dict[str, Any], wanted: str | None) -> dict[str, Any]:
        """A sample, with the detail of the run the page shows."""
        chosen = pick_run(snapshot.get("runs", []), wanted)
        run = None
        if chosen is not None:
            info = get_run(self.server.network, chosen, offline_after=self.server.offline_after)
            run = info.to_dict(detail=True) if info is not None else None
        return {**snapshot, "selected": chosen, "run": run}

    def _stream(self, wanted: str | None) -> None:
        """Server-sent events: a ``state`` event whenever the federation's state changes."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        sampler = self.server.sampler
        version, _ = sampler.latest()
        version -= 1  # send the latest sample at once
        last_body, last_write = "", time.monotonic()
        self.wfile.write(b"retry: 1000\n\n")
        while not sampler.stopped:
            version, snapshot = sampler.wait_newer(version, KEEPALIVE)
            body = json.dumps(self._state(snapshot, wanted), default=str)
            if body != last_body:
                self.wfile.write(f"event: state\ndata: {body}\n\n".encode())
                last_body, last_write = body, time.monotonic()
            elif time.monotonic() - last_write >= KEEPALIVE:
                self.wfile.write(b": keep-alive\n\n")
                last_write = time.monotonic()
            self.wfile.flush()
            self.server.pushed += 1

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
        elif path == "/api/state":
            _, snapshot = self.server.sampler.latest()
            self._json(self._state(snapshot, None))
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
        self.sampler = Sampler(network, offline_after)
        self.pushed = 0  # state events written to pages (for tests and curiosity)
        self.hits: Counter[str] = Counter()  # requests per path
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
        self.server.sampler.stop()  # ends every page's event stream
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
    server.sampler.start()
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="syft-flwr-dashboard",
        daemon=True,
    )
    thread.start()
    return DashboardServer(server=server, thread=thread, host=host)
