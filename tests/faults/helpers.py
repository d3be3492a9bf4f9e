"""A federation of real OS processes for the fault tests: the aggregator's ``main.py --active``
and each data owner's approved job (``run_private(blocking=False)``), on a tmp network.

Every process is started here and stopped by its PID (never by name) when the test ends:
:class:`Federation` is a context manager that SIGKILLs whatever is still running and lifts any
``chattr +i`` the test set.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomlkit

import syft_flwr
from syft_flwr.config import load_project_config
from syft_flwr.rds import setup_rds_server
from tests.support import AGGREGATOR, DATASITES, REPO, copy_app

KEY = "net"
DATASET = "pima"
PIMA = REPO / "datasets" / "pima-indians-diabetes-database"
FL_APP = REPO / "fl-diabetes-prediction"
ANALYTICS_APP = REPO / "fed-analytics-diabetes"
TINY_APP = REPO / "tests" / "fixtures" / "tiny_app"
LIMITED = Path(__file__).resolve().parent / "limited.py"
#: a data owner's job stops on its own after this long without a message (a safety net: the
#: aggregator's stop message normally ends it)
JOB_IDLE_TIMEOUT = "120"
JOB_TIMEOUT = 240.0
WAIT = 90.0  # the longest any wait on observable state may take before the test fails

#: local training long enough (~0.4 s a round) that a kill seen after round 1 lands in a later
#: round, not after the end of the run
SLOW_TRAINING = {"local-epochs": 300, "batch-size": 8}
#: the FL run the restart/resume tests compare with an uninterrupted run
FL_CONFIG = {"num-server-rounds": 3, **SLOW_TRAINING}

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll ``predicate`` until it returns something truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def pima_data(i: int) -> tuple[Path, Path]:
    """(private, mock) folders of data owner ``i`` (1 or 2)."""
    return PIMA / f"do{i}" / "private", PIMA / f"do{i}" / "mock"


def set_app_config(project: Path, values: dict[str, Any]) -> None:
    """Change ``[tool.flwr.app.config]`` of a project copy (before it is bootstrapped)."""
    path = project / "pyproject.toml"
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    config = doc["tool"]["flwr"]["app"]["config"]  # type: ignore[index]
    for key, value in values.items():
        config[key] = value  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def prepare_project(app: Path, dest: Path, config: dict[str, Any] | None = None) -> Path:
    """A bootstrapped copy of ``app`` for AGGREGATOR and DATASITES."""
    project = copy_app(app, dest)
    if config:
        set_app_config(project, config)
    syft_flwr.bootstrap(project, aggregator=AGGREGATOR, datasites=DATASITES)
    return project


def set_immutable(folder: Path, on: bool) -> None:
    """``chattr +i`` (``on``) or ``-i`` on ``folder``: while set, nobody, root included, can
    create, rename or delete files in it."""
    folder.mkdir(parents=True, exist_ok=True)
    flag = "+i" if on else "-i"
    subprocess.run(["chattr", flag, str(folder)], check=True, capture_output=True)


@dataclass
class Finished:
    """A finished aggregator process."""

    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"exit code {self.returncode}\n--- stdout ---\n{self.stdout[-4000:]}\n"
            f"--- stderr ---\n{self.stderr[-6000:]}"
        )


@dataclass
class DataOwner:
    """A data owner with one approved job; each ``start()`` is a new run of that job."""

    email: str
    admin: Any  # syft_flwr.rds Session of the owner
    job_uid: str
    runs: list[Any] = field(default_factory=list)  # RunHandle of each run, oldest first

    @property
    def run(self) -> Any:
        return self.runs[-1]

    def start(self, env: dict[str, str] | None = None) -> Any:
        """Run the approved job on the private data, without blocking (what a DO does)."""
        job = self.admin.job.get(uid=self.job_uid)
        handle = self.admin.run_private(
            job,
            blocking=False,
            timeout=JOB_TIMEOUT,
            env={"SYFT_FLWR_IDLE_TIMEOUT": JOB_IDLE_TIMEOUT, **(env or {})},
        )
        self.runs.append(handle)
        return handle

    def wait_serving(self) -> None:
        """Until the current run's node loop says it is serving (its own log file)."""

        def serving() -> bool:
            if self.run.done:
                raise AssertionError(f"{self.email}'s job ended early:\n{self.logs()}")
            text = self.run.stderr_path.read_text(errors="replace")
            return f"{self.email}: serving app" in text

        wait_for(serving, f"{self.email}'s job to serve")

    def kill(self) -> None:
        """SIGKILL the current run's job process (by its PID) and wait until it is recorded."""
        pid = self.run.pid
        assert pid is not None and not self.run.done, f"{self.email}'s job is not running"
        os.kill(pid, signal.SIGKILL)
        self.run.wait(timeout=WAIT)

    def answered_ids(self, app_name: str, network: Any) -> list[str]:
        """Message ids in the node's answered log, in order (a restarted node appends)."""
        path = network.answered_log(self.email, app_name)
        if not path.exists():
            return []
        return [line for line in path.read_text().splitlines() if line.strip()]

    def logs(self) -> str:
        parts = []
        for handle in self.runs:
            for stream in (handle.stdout_path, handle.stderr_path):
                if stream.exists():
                    parts.append(f"--- {self.email} run {handle.run_number} {stream.name} ---")
                    parts.append(stream.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


@dataclass
class Federation:
    """The DS's bootstrapped project, the network, and one DataOwner per datasite."""

    tmp: Path
    root: Path
    project: Path
    ds: Any  # RDSServer of the aggregator
    owners: dict[str, DataOwner]
    processes: list[subprocess.Popen] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # pid -> name of the process
    immutable: list[Path] = field(default_factory=list)

    @property
    def network(self) -> Any:
        return self.ds.network

    @property
    def app_name(self) -> str:
        return load_project_config(self.project).app_name

    @property
    def weights(self) -> Path:
        return self.project / "weights"

    def inbox(self, email: str) -> Path:
        return self.network.flwr_inbox(email, self.app_name)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "SYFTBOX_CLIENT_CONFIG_PATH": str(self.ds.client.config_path),
            "FLWR_TELEMETRY_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def _start(
        self, argv: list[str], name: str, env: dict[str, str], disk_limit: int | None
    ) -> subprocess.Popen:
        """Start ``python ARGV`` in the DS's project. Output goes to files in tmp, or with a
        ``disk_limit`` (bytes, see limited.py) to pipes, which the limit does not apply to."""
        if disk_limit is not None:
            argv = [str(LIMITED), str(disk_limit), *argv]
            out = err = subprocess.PIPE
        else:
            out = (self.tmp / f"{name}.out").open("w")
            err = (self.tmp / f"{name}.err").open("w")
        try:
            proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=self.project,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        finally:
            if disk_limit is None:
                out.close()
                err.close()
        self.processes.append(proc)
        self.names[proc.pid] = name
        return proc

    def start_aggregator(
        self, *args: str, name: str = "aggregator", disk_limit: int | None = None
    ) -> subprocess.Popen:
        """``python main.py --active ARGS``: the data scientist's aggregator."""
        return self._start(["main.py", "--active", *args], name, self.env(), disk_limit)

    def start_node(
        self, email: str, data_dir: Path, *, name: str, disk_limit: int | None = None
    ) -> subprocess.Popen:
        """``python main.py`` as a job runner starts it for ``email`` (DATA_DIR, identity),
        but directly, so that it can run under a ``disk_limit``."""
        env = self.env(
            SYFTBOX_CLIENT_CONFIG_PATH=str(self.owners[email].admin.client.config_path),
            DATA_DIR=str(data_dir),
            SYFT_FLWR_IDLE_TIMEOUT=JOB_IDLE_TIMEOUT,
        )
        return self._start(["main.py"], name, env, disk_limit)

    def finish(self, proc: subprocess.Popen, timeout: float = WAIT) -> Finished:
        """Wait for ``proc`` (AssertionError if it hangs) and collect what it printed."""
        name = self.names[proc.pid]
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"{name} did not finish within {timeout:g} s") from None
        if out is None:
            out = (self.tmp / f"{name}.out").read_text(errors="replace")
            err = (self.tmp / f"{name}.err").read_text(errors="replace")
        return Finished(proc.returncode, out, err)

    def aggregate(self, *args: str, name: str = "aggregator", **kwargs: Any) -> Finished:
        return self.finish(self.start_aggregator(*args, name=name, **kwargs))

    def make_immutable(self, folder: Path) -> None:
        """``chattr +i folder`` until :meth:`make_mutable` or the end of the test."""
        set_immutable(folder, True)
        self.immutable.append(folder)

    def make_mutable(self, folder: Path) -> None:
        set_immutable(folder, False)
        if folder in self.immutable:
            self.immutable.remove(folder)

    def checkpoint_round(self) -> int | None:
        """The last complete round the FL app saved, or None."""
        path = self.weights / "checkpoint.json"
        try:
            return int(json.loads(path.read_text())["round"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def logs(self) -> str:
        return "\n".join(owner.logs() for owner in self.owners.values())

    def close(self) -> None:
        """Stop everything this federation started, by PID, and undo chattr."""
        for folder in list(self.immutable):
            with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
                self.make_mutable(folder)
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                proc.communicate(timeout=30)  # reaps it and closes its pipes
        for owner in self.owners.values():
            for handle in owner.runs:
                if not handle.done:
                    handle.cancel("the fault test ended")
                    with contextlib.suppress(TimeoutError):
                        handle.wait(timeout=30)


@contextlib.contextmanager
def federation(
    tmp: Path,
    app: Path,
    data: Sequence[tuple[Path, Path]],
    *,
    config: dict[str, Any] | None = None,
    approve: bool = True,
) -> Iterator[Federation]:
    """Publish ``data[i]`` (private, mock) on DATASITES[i], bootstrap a copy of ``app``,
    submit it to each data owner and (``approve``) approve it. Nothing runs yet."""
    root = tmp / "root"
    project = prepare_project(app, tmp / "ds_project", config)
    owners: dict[str, DataOwner] = {}
    sessions = {}
    for email, (private, mock) in zip(DATASITES, data, strict=True):
        admin = setup_rds_server(email=email, root_dir=root, key=KEY).init_session(host=email)
        admin.dataset.create(name=DATASET, path=private, mock_path=mock, summary="test data")
        sessions[email] = admin
    ds = setup_rds_server(email=AGGREGATOR, root_dir=root, key=KEY)
    for email, admin in sessions.items():
        job = ds.init_session(host=email).job.submit(
            name="faults", user_code_path=project, dataset_name=DATASET, entrypoint="main.py"
        )
        if approve:
            admin.job.approve(admin.job.get(uid=job.uid))
        owners[email] = DataOwner(email, admin, job.uid)
    fed = Federation(tmp, root, project, ds, owners)
    try:
        yield fed
    finally:
        fed.close()


def leftovers(folder: Path) -> list[str]:
    """Every name in ``folder``: unanswered messages, temporary files of a failed write."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir())


def tiny_data(tmp: Path) -> list[tuple[Path, Path]]:
    """(private, mock) values.txt folders of two datasites for the tiny app."""
    pairs = []
    for i, values in enumerate([[1.0, 2.0, 3.0], [10.0, 20.0]], start=1):
        private, mock = tmp / f"data{i}", tmp / f"data{i}-mock"
        for folder, lines in ((private, values), (mock, [0.0])):
            folder.mkdir()
            (folder / "values.txt").write_text("\n".join(map(str, lines)) + "\n")
        pairs.append((private, mock))
    return pairs


def chattr_works(tmp: Path) -> str | None:
    """None if ``chattr +i`` makes a folder under ``tmp`` read-only even for this process,
    else why not (no chattr, a file system without the flag, no CAP_LINUX_IMMUTABLE)."""
    probe = tmp / "chattr-probe"
    probe.mkdir()
    try:
        done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
    except FileNotFoundError:
        return "chattr is not installed"
    if done.returncode != 0:
        return f"chattr +i failed on {tmp}: {done.stderr.strip()}"
    try:
        (probe / "x").write_text("x")
        return f"chattr +i did not stop writes in {probe}"
    except PermissionError:
        return None
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        for child in probe.iterdir():
            child.unlink()
        probe.rmdir()
