"""``syft-flwr demo``: the whole data scientist / data owner workflow, headless.

Both data owners publish the Pima diabetes dataset, the data scientist bootstraps a copy of
an example app, simulates it on the mock data and submits it; each data owner reviews,
approves and runs it on the private data; the data scientist aggregates. Every step prints
progress; any failure ends the demo with a clear message and a non-zero exit code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syft_flwr.errors import SyftFlwrError
from syft_flwr.utils import plural

if TYPE_CHECKING:
    from syft_flwr.monitor.runs import RunInfo
    from syft_flwr.rds.jobs import Job
    from syft_flwr.rds.runner import RunHandle
    from syft_flwr.simulation import SimulationResult

REPO = Path(__file__).resolve().parents[2]
DATASET = "pima-indians-diabetes-database"
DS_EMAIL = "ds@openmined.org"
DO_EMAILS = ("do1@openmined.org", "do2@openmined.org")
NETWORK_KEY = "local_syftbox_network"
APPS = {False: "fed-analytics-diabetes", True: "fl-diabetes-prediction"}
#: Written in every folder the demo creates; only such a folder (or an empty one) is cleared.
MARKER = ".syft-flwr-demo"
REVIEW_FILES = 20  # files listed in the data owner's review before "... and N more"
REVIEW_LINES = 40  # lines of the entrypoint shown in the review: all of a generated main.py


class DemoError(SyftFlwrError, RuntimeError):
    """A step of the demo failed; the message says which and why."""


@dataclass
class Steps:
    """Numbered steps: each prints its title and time; an error in one becomes a DemoError."""

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


def run_demo(
    folder: Path, *, fl: bool = False, timeout: float = 300.0, syftbox: bool = False
) -> int:
    """Run the demo in ``folder`` (created afresh); returns the exit code. ``syftbox=True``
    runs it over a SyftBox server and one client per party on loopback (``demo_syftbox``).

    Every failure, expected or not, ends as one ``DEMO FAILED: ...`` message on stderr and a
    non-zero code (130 when interrupted), never as a raw traceback.
    """
    try:
        _quiet_console()
        summary = _run(Path(folder).resolve(), fl=fl, timeout=timeout, syftbox=syftbox)
    except DemoError as exc:
        return _failed(str(exc))
    except KeyboardInterrupt:
        return _failed("interrupted", code=130)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, say it the demo's way
        return _failed(f"unexpected {type(exc).__name__}: {exc}")
    print(summary)
    return 0


def _failed(message: str, code: int = 1) -> int:
    print(f"\nDEMO FAILED: {message}", file=sys.stderr, flush=True)
    return code


def prepare_folder(folder: Path) -> None:
    """Make ``folder`` a fresh demo folder, carrying :data:`MARKER`.

    An existing folder is cleared only when it is empty or carries the marker (an earlier
    demo); anything else (a file, a project, ``.``) is refused with a :class:`DemoError`.
    """
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise DemoError(f"{folder} exists and is not a folder: pick another --folder or remove it")
    if folder.is_dir():
        if (folder / MARKER).is_file():
            shutil.rmtree(folder)
        elif any(folder.iterdir()):
            raise DemoError(
                f"{folder} is not a demo folder (it is not empty and has no {MARKER}); the "
                "demo will not delete it: pick another --folder or remove it yourself"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER).write_text("created by `syft-flwr demo`; the demo may delete it\n")
    except OSError as exc:
        raise DemoError(f"cannot create the demo folder {folder}: {exc}") from exc


def _stop_runs(handles: dict[str, RunHandle]) -> None:
    """Stop the data owners' runs that are still going (the demo failed) and wait for them."""
    for email, handle in handles.items():
        if not handle.done:
            handle.cancel("the demo failed before the job finished")
            try:
                handle.wait(timeout=10)
            except TimeoutError:
                print(f"      {email}: could not stop run of job {handle.job_uid}", file=sys.stderr)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} kB"


def review_text(job: Job) -> list[str]:
    """What a data owner reads before approving: each file with its size, the entrypoint's start."""
    from syft_flwr.rds.code import scan_code  # the file list the job was hashed over

    root = Path(job.code_path)
    files = scan_code(root)
    lines = [f"job {job.uid} '{job.name}' from {job.submitter}, {len(files)} files:"]
    lines += [f"  {_size((root / rel).stat().st_size):>9}  {rel}" for rel in files[:REVIEW_FILES]]
    if len(files) > REVIEW_FILES:
        lines.append(f"  ... and {len(files) - REVIEW_FILES} more")
    code = (root / job.entrypoint).read_text(encoding="utf-8", errors="replace").splitlines()
    lines.append(f"entrypoint {job.entrypoint}:")
    lines += [f"  | {line}".rstrip() for line in code[:REVIEW_LINES]]
    if len(code) > REVIEW_LINES:
        lines.append(f"  | ... ({len(code) - REVIEW_LINES} more lines)")
    return lines


@dataclass
class Outcome:
    """What the run itself reported: who took part, how many rows, how many rounds."""

    source: Path
    datasites: list[str]
    rows: int
    rows_detail: str
    rounds: int
    #: the last round's loss, accuracy, AUC: what the run's events say (FL app)
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None


def read_outcome(project: Path, *, fl: bool, run: RunInfo | None = None) -> Outcome:
    """Read the aggregator's own figures: ``figures/summary.json`` or ``weights/metrics.json``;
    with ``run`` (the aggregator's run on the network), the rounds and the final metrics come
    from its events, the count every other view shows.

    fed-analytics: the datasites that answered the last round, its rows (per outcome) and
    rounds. The FL app: the last round's participants, the training rows of the federated
    preprocessing plus the test rows of the last evaluation, and the last round's number.
    """
    outcome = _read_outputs(project, fl=fl)
    if run is not None:
        outcome.rounds = run.rounds_completed
        outcome.metrics = run.final_metrics
        outcome.run_id = run.run_id
    return outcome


def _read_outputs(project: Path, *, fl: bool) -> Outcome:
    source = project / ("weights/metrics.json" if fl else "figures/summary.json")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        if fl:
            last = data[-1]
            prep = json.loads((source.parent / "preprocessing.json").read_text(encoding="utf-8"))
            train, test = int(prep["rows"]), int(last["num-examples"])
            return Outcome(
                source,
                list(last["participants"]),
                train + test,
                f"{train} train + {test} test",
                int(last["round"]),
            )
        rows = {str(k): int(v) for k, v in data["rows"].items()}
        detail = ", ".join(f"y={k}: {v}" for k, v in sorted(rows.items()))
        by_site = data.get("rows_by_datasite") or {}
        if by_site:
            detail += "; " + ", ".join(f"{who}: {n}" for who, n in by_site.items())
        return Outcome(
            source, list(data["answered"]), sum(rows.values()), detail, int(data["rounds"])
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DemoError(
            f"could not read what the run produced from {source}: {type(exc).__name__}: {exc}"
        ) from exc


@dataclass(frozen=True)
class Where:
    """Where each party's network is: ``(root_dir, key)`` per email. ``synced``: each party
    has its own folder and others' files arrive through a sync (SyftBox), so the demo waits
    for them, up to ``sync_timeout`` seconds each time."""

    roots: dict[str, tuple[Path, str]]
    synced: bool = False
    sync_timeout: float = 90.0

    @classmethod
    def local(cls, folder: Path) -> Where:
        return cls({e: (folder, NETWORK_KEY) for e in (DS_EMAIL, *DO_EMAILS)})

    def setup(self, email: str):
        from syft_flwr.rds import setup_rds_server

        root_dir, key = self.roots[email]
        return setup_rds_server(email=email, root_dir=root_dir, key=key, reset=not self.synced)

    def eventually(self, action: Callable[[], Any], what: str) -> Any:
        """``action()``; over a sync, retried until it succeeds or ``sync_timeout`` passes."""
        if not self.synced:
            return action()
        deadline = time.monotonic() + self.sync_timeout
        while True:
            try:
                value = action()
                if value is not None and value is not False:
                    return value
                error: Exception | None = None
            except (LookupError, OSError, ValueError, StopIteration) as exc:
                error = exc
            if time.monotonic() > deadline:
                why = f" (last: {type(error).__name__}: {error})" if error else ""
                raise DemoError(
                    f"timed out after {self.sync_timeout:.0f} s waiting for {what} to arrive "
                    f"through the sync{why}: are the SyftBox clients running?"
                )
            time.sleep(0.2)


def _run(folder: Path, *, fl: bool, timeout: float, syftbox: bool = False) -> str:
    app_name = APPS[fl]
    started = time.perf_counter()
    prepare_folder(folder)
    handles: dict[str, RunHandle] = {}
    with contextlib.ExitStack() as stack:
        if syftbox:
            from syft_flwr.demo_syftbox import start_syftbox

            where, note = start_syftbox(folder, stack)
            print(f"syft-flwr demo: {app_name} over SyftBox ({note}) in {folder}")
        else:
            where = Where.local(folder)
            print(f"syft-flwr demo: {app_name} on a local network in {folder}")
        try:
            project, result = _workflow(folder, app_name, handles, timeout, where)
            outcome = read_outcome(project, fl=fl, run=_aggregator_run(where))
        finally:
            _stop_runs(handles)
    return _summary(folder, project, outcome, result.log_dir, time.perf_counter() - started)


def _workflow(
    folder: Path,
    app_name: str,
    handles: dict[str, RunHandle],
    timeout: float,
    where: Where | None = None,
) -> tuple[Path, SimulationResult]:
    """The seven steps; returns the project and the simulation's result.

    Each data owner's run handle goes into ``handles`` as soon as it starts, so the caller can
    stop them whatever happens.
    """
    import syft_flwr

    where = where or Where.local(folder)
    steps = Steps(total=7)
    with steps.step("Data owners publish the dataset (private part stays private)"):
        admins = {}
        for i, email in enumerate(DO_EMAILS, start=1):
            server = where.setup(email)
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
        ds = where.setup(DS_EMAIL)
        guests = {
            email: where.eventually(lambda e=email: ds.init_session(host=e), f"{email}'s keys")
            for email in DO_EMAILS
        }
        mock_paths = []
        for i, (email, guest) in enumerate(guests.items(), start=1):
            dataset = where.eventually(
                lambda g=guest, i=i: _synced_dataset(g, _rows(_data_dir(i) / "mock")),
                f"{email}'s dataset",
            )
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
            f"simulation: {plural(result.rounds, 'round')} in {result.duration:.2f} s; "
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
        reviewed: set[str] = set()
        for email, admin in admins.items():
            job = where.eventually(
                lambda a=admin, uid=jobs[email].uid: next(
                    j for j in a.job.get_all(status="pending_code_review") if j.uid == uid
                ),
                f"the job submitted to {email}",
            )
            if job.code_sha256 in reviewed:
                _say(
                    f"{email} reviews job {job.uid}: the same code as above (sha256 "
                    f"{job.code_sha256[:12]}...)"
                )
            else:
                first, *rest = review_text(job)
                _say(f"{email} reviews {first}")
                for line in rest:
                    _say(line)
                reviewed.add(job.code_sha256)
            admin.job.approve(job)
            sandboxed = _sandbox_available()
            handles[email] = admin.run_private(job, blocking=False, sandbox=sandboxed)
            how = "in a bubblewrap sandbox" if sandboxed else "WITHOUT a sandbox (audited)"
            _say(f"{email}: approved; running on private data {how}")

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
        if where.synced:
            for email, guest in guests.items():
                results = where.eventually(
                    lambda g=guest, uid=jobs[email].uid: g.job.get_results(uid),
                    f"the results {email} shared",
                )
                _say(f"{DS_EMAIL} received {email}'s results: {results}")

    return project, result


def _aggregator_run(where: Where) -> RunInfo:
    """The data scientist's run on its network (the newest one it registered)."""
    from syft_flwr.monitor.runs import list_runs
    from syft_flwr.network import Network

    root_dir, key = where.roots[DS_EMAIL]
    runs = list_runs(Network.at(root_dir, key), aggregator=DS_EMAIL)
    if not runs:
        raise DemoError(f"the aggregator registered no run on the network in {root_dir}")
    return runs[0]


def _synced_dataset(guest: Any, mock_rows: int) -> Any:
    """The demo dataset as the guest sees it once its mock data arrived in full."""
    dataset = guest.dataset.get(name=DATASET)
    return dataset if _rows(Path(dataset.get_mock_path())) >= mock_rows else None


def _summary(folder: Path, project: Path, outcome: Outcome, log_dir: Path, total: float) -> str:
    """The closing table (from what the run reported) and where its outputs are."""
    lines = [
        "",
        f"Summary (as reported by the run: its events and {outcome.source})",
        f"  datasites:         {', '.join(outcome.datasites)} ({len(outcome.datasites)})",
        f"  rows contributed:  {outcome.rows} ({outcome.rows_detail})",
        f"  rounds:            {outcome.rounds}",
    ]
    for name, label in (
        ("accuracy", "final accuracy"),
        ("auc", "final AUC"),
        ("loss", "final loss"),
    ):
        if name in outcome.metrics:
            lines.append(f"  {label + ':':<19}{outcome.metrics[name]:.4f}")
    lines += [
        f"  total time:        {total:.1f} s",
    ]
    if outcome.run_id is not None:
        lines.append(f"  run:               {outcome.run_id} (its events: runs/{outcome.run_id}/)")
    for sub in ("figures", "weights"):
        names = sorted(p.name for p in (project / sub).glob("*") if p.is_file())
        if names:
            shown = names if len(names) <= 6 else [*names[:2], "...", *names[-2:]]
            lines.append(f"  {sub}: {project / sub}  ({len(names)} files: {', '.join(shown)})")
    lines += [
        f"  mock-data outputs: {folder / 'ds_outputs'}",
        f"  simulation logs: {log_dir}",
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


@functools.cache
def _sandbox_available() -> bool:
    """Whether data owners' jobs can run in bubblewrap here; if not, the demo says why once
    and runs them without it (each run's opt-out is in the owner's audit log)."""
    from syft_flwr.sandbox.bwrap import BubblewrapMissingError, bwrap_path

    try:
        bwrap_path()
    except BubblewrapMissingError as exc:
        print(
            f"NOTE: {exc}. The demo runs the data owners' jobs without the sandbox, with "
            "their rights; everything else is the same.",
            flush=True,
        )
        return False
    return True
