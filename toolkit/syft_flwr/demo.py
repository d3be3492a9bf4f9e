"""``syft-flwr demo``: the whole data scientist / data owner workflow, headless.

Both data owners publish the Pima diabetes dataset, the data scientist bootstraps a copy of
an example app, simulates it on the mock data and submits it; each data owner reviews,
approves and runs it on the private data; the data scientist aggregates. Every step prints
progress; any failure ends the demo with a clear message and a non-zero exit code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATASET = "pima-indians-diabetes-database"
DS_EMAIL = "ds@openmined.org"
DO_EMAILS = ("do1@openmined.org", "do2@openmined.org")
NETWORK_KEY = "local_syftbox_network"
APPS = {False: "fed-analytics-diabetes", True: "fl-diabetes-prediction"}


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


@dataclass
class Steps:
    total: int
    done: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.done += 1
        print(f"\n[{self.done}/{self.total}] {title}", flush=True)
        started = time.perf_counter()
        try:
            yield
        except DemoError:
            raise
        except Exception as exc:
            raise DemoError(
                f"step {self.done} ({title}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        self.timings[title] = time.perf_counter() - started
        print(f"      done in {self.timings[title]:.1f} s", flush=True)


def _say(text: str) -> None:
    print(f"      {text}", flush=True)


def _data_dir(do_index: int) -> Path:
    return REPO / "datasets" / DATASET / f"do{do_index}"


def _rows(folder: Path) -> int:
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in folder.glob("*.csv"))


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def _quiet_console() -> None:
    """The demo prints its own progress; parties' logs go to their log files."""
    import logging

    import flwr.common.logger  # noqa: F401 - installs Flower's console handler first
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    for handler in logging.getLogger("flwr").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setLevel(logging.WARNING)


def run_demo(folder: Path, *, fl: bool = False, timeout: float = 300.0) -> int:
    """Run the demo in ``folder`` (created afresh); returns the exit code."""
    _quiet_console()
    try:
        summary = _run(Path(folder).resolve(), fl=fl, timeout=timeout)
    except DemoError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _run(folder: Path, *, fl: bool, timeout: float) -> str:
    import syft_flwr
    from syft_flwr.rds import setup_rds_server

    app_name = APPS[fl]
    steps = Steps(total=7)
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    print(f"syft-flwr demo: {app_name} on a local network in {folder}")

    with steps.step("Data owners publish the dataset (private part stays private)"):
        admins = {}
        for i, email in enumerate(DO_EMAILS, start=1):
            server = setup_rds_server(email=email, root_dir=folder, key=NETWORK_KEY, reset=True)
            admin = server.init_session(host=email)
            admin.dataset.create(
                name=DATASET,
                path=_data_dir(i) / "private",
                mock_path=_data_dir(i) / "mock",
                summary="Pima Indians Diabetes, this hospital's share",
                description_path=REPO / "datasets" / DATASET / "README.md",
            )
            admins[email] = admin
            _say(f"{email}: published {DATASET} ({_rows(_data_dir(i) / 'mock')} mock rows)")

    with steps.step("Data scientist logs in as a guest and explores the mock data"):
        ds = setup_rds_server(email=DS_EMAIL, root_dir=folder, key=NETWORK_KEY, reset=True)
        guests = {email: ds.init_session(host=email) for email in DO_EMAILS}
        mock_paths = []
        for email, guest in guests.items():
            dataset = guest.dataset.get(name=DATASET)
            mock_paths.append(dataset.get_mock_path())
            try:
                dataset.get_private_path()
                raise DemoError(f"the guest could read {email}'s private path")
            except PermissionError as exc:
                _say(f"{email}: mock at {mock_paths[-1]}; private refused ({exc})")

    with steps.step(f"Data scientist bootstraps {app_name} and simulates on the mock data"):
        project = folder / "ds_project" / app_name
        shutil.copytree(
            REPO / app_name,
            project,
            ignore=shutil.ignore_patterns(
                "__pycache__", "main.py", "figures", "weights", "simulation_logs"
            ),
        )
        _strip_syft_table(project)
        syft_flwr.bootstrap(project, aggregator=DS_EMAIL, datasites=list(DO_EMAILS))
        result = syft_flwr.run(project, mock_paths)
        mock_figures = folder / "ds_outputs" / "mock_figures"
        for sub in ("figures", "weights"):
            if (project / sub).exists():
                shutil.move(project / sub, folder / "ds_outputs" / f"mock_{sub}")
        _say(
            f"simulation: {result.rounds} round(s) in {result.duration:.2f} s; "
            f"mock outputs in {mock_figures.parent}"
        )

    with steps.step("Data scientist submits the project as a job to each data owner"):
        jobs = {}
        for email, guest in guests.items():
            jobs[email] = guest.job.submit(
                name=app_name,
                user_code_path=project,
                dataset_name=DATASET,
                entrypoint="main.py",
            )
            _say(f"{email}: job {jobs[email].uid} submitted")

    with steps.step("Data owners review the code, approve it and start it on private data"):
        handles = {}
        for email, admin in admins.items():
            pending = admin.job.get_all(status="pending_code_review")
            job = next(j for j in pending if j.uid == jobs[email].uid)
            files = sorted(
                p.relative_to(job.code_path).as_posix()
                for p in Path(job.code_path).rglob("*")
                if p.is_file()
            )
            _say(
                f"{email} reviews job {job.uid} from {job.submitter}: "
                f"{len(files)} files, entrypoint {job.entrypoint}"
            )
            admin.job.approve(job)
            handles[email] = admin.run_private(job, blocking=False)
            _say(f"{email}: approved; running on private data")

    with steps.step("Data scientist runs the aggregator (python main.py --active)"):
        env = dict(
            os.environ,
            SYFTBOX_CLIENT_CONFIG_PATH=str(ds.client.config_path),
            FLWR_TELEMETRY_ENABLED="0",
        )
        log = folder / "ds_outputs" / "aggregator.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            proc = subprocess.run(
                [sys.executable, "main.py", "--active"],
                cwd=project,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise DemoError(f"the aggregator exited with {proc.returncode}:\n{tail}")
        _say(f"aggregator finished; log at {log}")

    with steps.step("Data owners' jobs finish; they share the logs and results"):
        for email, handle in handles.items():
            handle.wait(timeout=timeout)
            admin = admins[email]
            job = admin.job.get(uid=jobs[email].uid)
            if job.status != "completed":
                raise DemoError(f"{email}'s job ended as {job.status}")
            admin.job.share_results(job)
            _say(f"{email}: job completed; logs and results shared with {DS_EMAIL}")

    from syft_flwr.config import flower_run_config

    outputs = {
        sub: sorted(p.name for p in (project / sub).glob("*") if p.is_file())
        for sub in ("figures", "weights")
    }
    if not any(outputs.values()):
        raise DemoError(f"the run wrote no figures or weights in {project}")
    rounds = flower_run_config(project).get("num-server-rounds", result.rounds)
    rows = {email: _rows(_data_dir(i) / "private") for i, email in enumerate(DO_EMAILS, 1)}
    total = time.perf_counter() - started
    lines = ["", "Summary", f"  {'datasite':<22}{'rows contributed':>18}"]
    lines += [f"  {email:<22}{n:>18}" for email, n in rows.items()]
    lines.append(f"  rounds: {rounds}   total time: {total:.1f} s")
    for sub, names in outputs.items():
        if names:
            shown = names if len(names) <= 6 else [*names[:2], "...", *names[-2:]]
            lines.append(f"  {sub}: {project / sub}  ({len(names)} files: {', '.join(shown)})")
    lines += [
        f"  mock-data outputs: {folder / 'ds_outputs'}",
        f"  simulation logs: {result.log_dir}",
        f"  aggregator log: {folder / 'ds_outputs' / 'aggregator.log'}",
    ]
    return "\n".join(lines)


def _strip_syft_table(project: Path) -> None:
    """Drop a [tool.syft_flwr] table left in a copied app so bootstrap starts clean."""
    import tomlkit

    path = project / "pyproject.toml"
    doc = tomlkit.parse(path.read_text())
    if "syft_flwr" in doc.get("tool", {}):
        del doc["tool"]["syft_flwr"]
        path.write_text(tomlkit.dumps(doc))
