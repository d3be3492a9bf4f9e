"""``syft_flwr.run``: simulate the federation on mock data, over the real transport.

The simulation is the real runtime in one process: it creates an identity per party on a
throwaway network folder, serves every datasite's ClientApp on its mock data from one pool
of worker threads (:class:`~syft_flwr.transport.pool.NodePool`: thousands of datasites cost
a few threads, and an idle one nothing), runs the ServerApp with
:func:`~syft_flwr.runtime.run_aggregator` on the calling thread, and collects the outcomes.
Messages travel as files, exactly as in a real run. Any failure raises
:class:`SimulationError`; success is never reported after a failure.
"""

from __future__ import annotations

import importlib
import re
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Generator
from concurrent.futures import wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr import collector
from syft_flwr.apps import FlowerApps, load_apps, release
from syft_flwr.config import ProjectConfig, load_project_config
from syft_flwr.crypto import create_party
from syft_flwr.errors import SyftFlwrError, UsageError
from syft_flwr.network.layout import Network
from syft_flwr.party_logs import party_context, party_log_files
from syft_flwr.runtime import datasite_node, describe_node_result, run_aggregator, run_config_for

if TYPE_CHECKING:
    from syft_flwr.transport import NodeResult
    from syft_flwr.transport.report import RunReport

LOG_FOLDER = "simulation_logs"
OUTPUT_FOLDERS = ("figures", "weights")
#: loaded with the app, while the collector is paused
_RUNTIME_MODULES = ("syft_flwr.monitor", "syft_flwr.transport.pool", "syft_flwr.transport.settings")
#: how long the datasites have, once the ServerApp is done, to read their stop message
_STOP_GRACE = 30.0


class SimulationError(SyftFlwrError, RuntimeError):
    """A simulated run failed; ``failures`` maps each failing party to the cause."""

    def __init__(self, message: str, failures: dict[str, str], log_dir: Path | None = None):
        super().__init__(message)
        self.failures = failures
        self.log_dir = log_dir


@dataclass
class SimulationResult:
    """What a successful simulation produced."""

    project_dir: Path
    app_name: str
    rounds: int
    participants: dict[int, list[str]]  # round -> datasites that answered it
    outputs: list[Path]
    log_dir: Path
    duration: float
    report: Any = field(repr=False, default=None)
    #: server round -> the metrics the ServerApp reported (the run's RoundMetrics events)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last reported round's metrics ({} when the app reported none)."""
        return dict(self.metrics[max(self.metrics)]) if self.metrics else {}

    def __bool__(self) -> bool:
        """True: a result exists only for a run that succeeded (a failure raises), so
        syft-flwr 0.5's ``if syft_flwr.run(...):`` reads the same."""
        return True

    def __await__(self) -> Generator[Any, None, SimulationResult]:
        """``await syft_flwr.run(...)`` (syft-flwr 0.5 in a notebook) gives the result: the run
        has already finished when ``run`` returns."""
        return self
        yield  # a generator that returns at once


def _check_inputs(project_dir: Path, mock_paths: list[Path], datasites: tuple[str, ...]) -> None:
    if len(mock_paths) != len(datasites):
        raise ValueError(
            f"{len(mock_paths)} mock path(s) given for {len(datasites)} datasite(s) "
            f"({', '.join(datasites)}): pass one mock data folder per datasite, in the same order"
        )
    for email, path in zip(datasites, mock_paths, strict=True):
        if not path.exists():
            raise FileNotFoundError(f"mock data for {email} not found at {path}")


def _outputs_since(project_dir: Path, start: float) -> list[Path]:
    found = []
    for folder in OUTPUT_FOLDERS:
        root = project_dir / folder
        if root.is_dir():
            found += [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= start]
    return sorted(found)


_DATA_HINT = (
    " (hint: the ClientApp could not find its data; load it with "
    "syft_flwr.utils.get_syftbox_dataset_path(), which points at each datasite's data, "
    "instead of a fixed path or an environment variable such as DATA_DIR)"
)
#: what a ClientApp raises when it looks for its data where the toolkit did not put it: a
#: fixed path that does not exist, no data path at all (DatasetPathError), an unset
#: environment variable (``os.environ["DATA_DIR"]``: KeyError) or ``Path(os.getenv(...))``
_DATA_ERRORS = re.compile(
    r"\b(FileNotFoundError|NotADirectoryError|DatasetPathError)\b"
    r"|\bKeyError\b.*'[A-Z0-9_]*(DATA|PATH|DIR)[A-Z0-9_]*'"
    r"|\bTypeError\b.*os\.PathLike object, not NoneType"
)


def _with_hint(why: str) -> str:
    """``why``, with a hint on loading data the toolkit's way when it looks like that failed."""
    return why + _DATA_HINT if _DATA_ERRORS.search(why) else why


def _collect_failures(
    failures: dict[str, str],
    report: RunReport,
    node_results: dict[str, NodeResult],
    unfinished: list[str],
) -> dict[str, str]:
    """Every party that failed, first cause first: the ServerApp's, then the grid's and
    the nodes'."""
    found = dict(failures)
    for email, why in report.failures().items():
        found.setdefault(email, why)
    for email, result in node_results.items():
        if not result.ok:
            found.setdefault(email, describe_node_result(result))
    for email in unfinished:
        found.setdefault(email, "did not stop after the run ended")
    return found


#: a simulated datasite's heartbeat is rewritten at least this often ...
_BEAT_MIN = 2.0
#: ... and at most this seldom (under the 15 s after which readers call a party offline)
_BEAT_MAX = 10.0
#: heartbeats of one simulation written per second, at most (a thousand datasites beating
#: every 2 s would keep a core busy writing status files)
_BEATS_PER_SECOND = 100


def _open_files_for(parties: int) -> None:
    """Raise this process's open-file limit to what ``parties`` need (a node lock and a
    log file each), within the hard limit."""
    need = 3 * parties + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < need:
            logger.warning(
                f"{parties} parties need about {need} open files; the limit is {hard} "
                "(raise it with `ulimit -n`)"
            )


def run(
    project_dir: Path | str,
    mock_paths: list[Path | str] | None = None,
    *,
    run_config: dict[str, Any] | None = None,
    timeout: float | None = None,
    network_dir: Path | str | None = None,
    metrics_port: int | None = None,
    mock_dataset_paths: list[Path | str] | None = None,
) -> SimulationResult:
    """Simulate the bootstrapped Flower app in ``project_dir`` on one mock folder per datasite.

    ``mock_paths`` are in the order of ``[tool.syft_flwr].datasites``. ``run_config`` overrides
    the app's ``[tool.flwr.app.config]``; ``timeout`` bounds each round's wait for replies.
    Logs go to ``<project>/simulation_logs/<email>.log``; outputs (figures/, weights/) to the
    project folder, the run's events to ``<project>/runs/<run_id>/events.jsonl``. The network
    is thrown away afterwards unless ``network_dir`` names where to keep it (point
    ``syft-flwr dashboard`` at it to watch the run); ``metrics_port`` serves Prometheus metrics
    during the run. Raises :class:`SimulationError` naming each datasite that failed.
    ``mock_dataset_paths`` is syft-flwr 0.5's name for ``mock_paths``.
    """
    mock_paths = mock_paths if mock_paths is not None else mock_dataset_paths
    if mock_paths is None:
        raise UsageError("pass one mock data folder per datasite: run(project_dir, [mock1, ...])")
    collector.skip_collections_at_exit()  # a script's exit after a run: ~0.5 s less
    project_dir = Path(project_dir).expanduser().resolve()
    config = load_project_config(project_dir)
    mocks = [Path(p).expanduser().resolve() for p in mock_paths]
    _check_inputs(project_dir, mocks, config.datasites)
    with collector.loading_long_lived():  # flwr, the transport and the app load here
        for module in _RUNTIME_MODULES:
            importlib.import_module(module)
        apps = load_apps(project_dir)
    try:
        return _simulate(
            project_dir, config, mocks, apps, run_config, timeout, network_dir, metrics_port
        )
    finally:
        release(project_dir)  # the app imported itself freely during the run; not after


def _simulate(
    project_dir: Path,
    config: ProjectConfig,
    mocks: list[Path],
    apps: FlowerApps,
    run_config: dict[str, Any] | None,
    timeout: float | None,
    network_dir: Path | str | None,
    metrics_port: int | None,
) -> SimulationResult:
    from syft_flwr.monitor import Heartbeat
    from syft_flwr.transport.pool import NodePool
    from syft_flwr.transport.settings import TransportSettings

    full_config = run_config_for(project_dir, run_config, resume=False)
    settings = TransportSettings.from_env(msg_timeout=timeout)

    sim_id = uuid.uuid4().hex
    keep_network = network_dir is not None
    workdir = Path(tempfile.mkdtemp(prefix="syft_flwr_sim_"))
    network = Network(Path(network_dir).resolve() if keep_network else workdir / "network")
    log_dir = project_dir / LOG_FOLDER
    parties = [*config.datasites, config.aggregator]
    _open_files_for(len(parties))
    for email in parties:  # keys to authenticate and encrypt every message file
        create_party(network, email, durable=False)  # a throwaway network
    started = time.time()
    failures: dict[str, str] = {}
    node_results: dict[str, NodeResult] = {}
    unfinished: list[str] = []
    beat_every = min(_BEAT_MAX, max(_BEAT_MIN, len(config.datasites) / _BEATS_PER_SECOND))

    with party_log_files(sim_id, log_dir, parties), NodePool() as pool:
        served = {}
        heartbeats = []
        try:
            for email, mock in zip(config.datasites, mocks, strict=True):
                heartbeat = None
                if keep_network:  # a throwaway network has no one to read its heartbeats
                    heartbeat = Heartbeat(network, email, "datasite", interval=beat_every)
                    heartbeats.append(heartbeat.start())
                node = datasite_node(
                    apps.client_app,
                    network,
                    email,
                    config,
                    mock,
                    run_config=full_config,
                    heartbeat=heartbeat,
                    settings=settings,
                )
                served[email] = pool.serve(node, context=partial(party_context, sim_id, email))
            with party_context(sim_id, config.aggregator):
                outcome = run_aggregator(
                    apps.server_app,
                    network,
                    config.aggregator,
                    project_dir,
                    config,
                    run_config=full_config,
                    timeout=timeout,
                    metrics_port=metrics_port,
                    settings=settings,
                )
            if outcome.error is not None:
                error = outcome.error
                failures[config.aggregator] = f"ServerApp raised {type(error).__name__}: {error}"
            report = outcome.report
            if outcome.error is None:  # the stop messages went out: let them arrive
                wait(served.values(), timeout=_STOP_GRACE)
            else:  # some may not have: stop the nodes here
                pool.shutdown()
            for email, future in served.items():
                if not future.done():
                    unfinished.append(email)
                elif future.exception() is not None:
                    exc = future.exception()
                    failures.setdefault(email, f"crashed: {type(exc).__name__}: {exc}")
                else:
                    node_results[email] = future.result()
            failures = _collect_failures(failures, report, node_results, unfinished)
        finally:
            pool.shutdown()
            for heartbeat in heartbeats:
                heartbeat.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    duration = time.time() - started

    if failures:
        failures = {who: _with_hint(why) for who, why in failures.items()}
        lines = "\n".join(f"  - {who}: {why}" for who, why in failures.items())
        print(f"syft_flwr.run: logs of the {len(parties)} parties in {log_dir}", flush=True)
        raise SimulationError(
            f"simulation of {config.app_name} failed:\n{lines}\nlogs: {log_dir}",
            failures,
            log_dir,
        )
    if report.quarantined:
        logger.warning(f"simulation of {config.app_name}: {report.summary()}")
    print(f"syft_flwr.run: logs of the {len(parties)} parties in {log_dir}", flush=True)
    return SimulationResult(
        project_dir=project_dir,
        app_name=config.app_name,
        rounds=report.server_rounds,
        participants=report.participants(),
        outputs=_outputs_since(project_dir, started - 1),
        log_dir=log_dir,
        duration=duration,
        report=report,
        metrics=dict(report.metrics),
    )
