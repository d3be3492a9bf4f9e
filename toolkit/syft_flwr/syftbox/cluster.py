"""A SyftBox server and its clients on loopback (127.0.0.1), each in its own process group.

For ``syft-flwr demo --syftbox``, the tests and the benchmark: :class:`LocalSyftBox` starts
the server, then one client per party, each with its own data folder; :meth:`close` (also on
an error or Ctrl-C, as a context manager) stops every process it started, and only those.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from syft_flwr.syftbox.env import SyftBoxUnavailable, syftbox_bin
from syft_flwr.syftbox.workspace import SyftBoxWorkspace

HOST = "127.0.0.1"
#: variables of the toolkit that a SyftBox client would misread as its own
_DROPPED_ENV = ("SYFTBOX_CLIENT_CONFIG_PATH", "SYFTBOX_DATA_DIR", "SYFTBOX_EMAIL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["SYFTBOX_DISABLE_ICONS"] = "1"
    return env


def stop_group(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@dataclass
class Client:
    """One party's SyftBox client."""

    email: str
    data_dir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def workspace(self) -> SyftBoxWorkspace:
        return SyftBoxWorkspace(self.data_dir, self.email)

    @property
    def config_path(self) -> Path:
        return self.data_dir.parent / f".{self.data_dir.name}-syftbox.json"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class LocalSyftBox:
    """``root/server`` (the server's data) and ``root/<name>`` per client, on loopback."""

    root: Path
    server_port: int = 0
    clients: dict[str, Client] = field(default_factory=dict)
    server: subprocess.Popen | None = None
    startup_timeout: float = 60.0

    @property
    def server_url(self) -> str:
        return f"http://{HOST}:{self.server_port}"

    @property
    def server_dir(self) -> Path:
        return self.root / "server"

    @property
    def snapshot_dir(self) -> Path:
        """Every file the server stores, ``<email>/...``."""
        return self.server_dir / "snapshot"

    def __enter__(self) -> LocalSyftBox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _spawn(self, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.root,
                start_new_session=True,  # its own process group: stopped as one
            )

    def start_server(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.server_port = self.server_port or free_port()
        env = dict(_env(), SYFTBOX_DATA_FOLDER=str(self.server_dir))
        uvicorn = str(syftbox_bin("uvicorn"))
        self.server = self._spawn(
            [uvicorn, "syftbox.server.server:app", "--host", HOST, "--port", str(self.server_port)],
            self.root / "logs" / "server.log",
            env,
        )
        self._wait(self._server_up, "the SyftBox server", self.server, "server.log")

    def _server_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.server_url}/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def add_client(self, email: str, name: str) -> Client:
        """Start ``email``'s client with data folder ``root/name``; returns once it synced
        its own datasite to the server (the server starts first if it is not running)."""
        if self.server is None:
            self.start_server()
        client = Client(email, self.root / name, free_port())
        self.clients[email] = client
        self.start_client(email)
        return client

    def start_client(self, email: str) -> None:
        client = self.clients[email]
        args = [
            str(syftbox_bin("syftbox")),
            "client",
            "-d",
            str(client.data_dir),
            "-e",
            email,
            "-s",
            self.server_url,
            "-c",
            str(client.config_path),
            "--no-open-dir",
            "-p",
            str(client.port),
        ]
        log = self.root / "logs" / f"{client.data_dir.name}.log"
        client.proc = self._spawn(args, log, _env())
        on_server = self.snapshot_dir / email / "syftperm.yaml"
        self._wait(on_server.is_file, f"{email}'s SyftBox client", client.proc, log.name)
        client.workspace.check()

    def stop_client(self, email: str) -> None:
        client = self.clients[email]
        if client.proc is not None:
            stop_group(client.proc)
            client.proc = None

    def _wait(self, ready, what: str, proc: subprocess.Popen, log: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not ready():
            if proc.poll() is not None:
                raise SyftBoxUnavailable(
                    f"{what} exited with {proc.returncode} while starting: see "
                    f"{self.root / 'logs' / log}"
                )
            if time.monotonic() > deadline:
                raise SyftBoxUnavailable(
                    f"{what} did not start in {self.startup_timeout:.0f} s: see "
                    f"{self.root / 'logs' / log}"
                )
            time.sleep(0.1)

    def close(self) -> None:
        """Stop every client, then the server (only the processes this object started)."""
        for email in list(self.clients):
            self.stop_client(email)
        if self.server is not None:
            stop_group(self.server)
            self.server = None
