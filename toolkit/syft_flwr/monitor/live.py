"""What the dashboard pushes to its pages: one snapshot of the federation, sampled once a
second by one thread however many pages are open, with a short CPU history per datasite and
the network's mean CPU (kept here, from the heartbeats: a datasite publishes only its latest).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.monitor.participants import list_participants
from syft_flwr.monitor.runs import RunInfo, latest_files, list_runs
from syft_flwr.network.layout import Network

FIGURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
FIGURES_PER_PROJECT = 12
FIGURES_TOTAL = 24

#: CPU samples kept per datasite and for the network's mean (heartbeats come every ~2 s)
HISTORY = 60


def figures_payload(runs: list[RunInfo]) -> list[dict[str, Any]]:
    """The newest figures, one listing per project folder (its newest run names them), and
    each run's own (``runs/<run_id>/metrics.png``, its training figure)."""
    seen: set[Path] = set()
    found = []
    for run in runs:  # newest first
        folders = [run.events_path.parent]
        if run.figures_dir not in seen:
            seen.add(run.figures_dir)
            folders.append(run.figures_dir)
        paths = [
            p for f in folders for p in latest_files(f, tuple(FIGURE_TYPES), FIGURES_PER_PROJECT)
        ]
        for path in paths:
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


class Sampler:
    """Samples the network every ``every`` seconds in a daemon thread; :meth:`wait_newer`
    blocks until a sample newer than the caller's, for server-sent events."""

    def __init__(self, network: Network, offline_after: float, every: float = 1.0) -> None:
        self.network = network
        self.offline_after = offline_after
        self.every = every
        self._cond = threading.Condition()
        self._version = 0
        self._snapshot: dict[str, Any] = {}
        self._cpu: dict[str, deque[tuple[float, float | None, float | None]]] = {}
        self._seen: dict[str, str | None] = {}  # email -> updated_at of the last heartbeat
        self._mean: deque[tuple[float, float]] = deque(maxlen=HISTORY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="syft-flwr-sampler", daemon=True)

    def start(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except Exception as exc:  # a bad file must not stop the live page
                logger.warning(f"dashboard: sampling the network failed: {exc!r}")

    def sample(self) -> None:
        """Read participants and runs once; record the CPU of every fresh heartbeat."""
        now = time.time()
        people = list_participants(self.network, offline_after=self.offline_after)
        online_cpu = []
        for p in people:
            cpu = p.cpu or {}
            machine, process = cpu.get("machine"), cpu.get("process")
            if p.online and p.updated_at != self._seen.get(p.email):
                self._seen[p.email] = p.updated_at
                history = self._cpu.setdefault(p.email, deque(maxlen=HISTORY))
                history.append((now, machine, process))
            if p.online and isinstance(machine, int | float):
                online_cpu.append(float(machine))
        mean = sum(online_cpu) / len(online_cpu) if online_cpu else None
        if mean is not None:
            self._mean.append((now, mean))
        participants = []
        for p in people:
            data = p.to_dict()
            data["cpu_history"] = [list(s) for s in self._cpu.get(p.email, ())]
            participants.append(data)
        runs = list_runs(self.network, offline_after=self.offline_after)
        snapshot = {
            "network": str(self.network.root),
            "offline_after": self.offline_after,
            "participants": participants,
            "cpu": {
                "mean": mean,
                "online": len(online_cpu),
                "history": [list(s) for s in self._mean],
            },
            "runs": [r.to_dict(detail=False) for r in runs],
            "figures": figures_payload(runs),
        }
        with self._cond:
            self._snapshot = snapshot
            self._version += 1
            self._cond.notify_all()

    def latest(self) -> tuple[int, dict[str, Any]]:
        with self._cond:
            return self._version, self._snapshot

    def wait_newer(self, version: int, timeout: float) -> tuple[int, dict[str, Any]]:
        """The first sample after ``version`` (or the latest one after ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > version or self.stopped, timeout)
            return self._version, self._snapshot
