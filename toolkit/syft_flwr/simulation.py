"""``syft_flwr.run``: simulate the federation on mock data, in threads, over the real transport.

One thread per datasite serves the ClientApp on its mock data; one thread runs the ServerApp
over a :class:`DatasiteGrid`; messages travel as files through a throwaway network folder,
exactly as in a real run. Any failure raises :class:`SimulationError`; success is never
reported after a failure.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr import collector
from syft_flwr.config import Identity, ProjectConfig, load_project_config
from syft_flwr.network.layout import Network
from syft_flwr.party_logs import party_context, party_log_files
from syft_flwr.runtime import describe_node_result, run_config_for

if TYPE_CHECKING:
    from syft_flwr.transport import NodeResult
    from syft_flwr.transport.report import RunReport

LOG_FOLDER = "simulation_logs"
OUTPUT_FOLDERS = ("figures", "weights")


class SimulationError(RuntimeError):
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
    threads: list[threading.Thread],
    config: ProjectConfig,
) -> dict[str, str]:
    """Every party that failed, first cause first: the threads', then the grid's and nodes'."""
    found = dict(failures)
    for email, why in report.failures().items():
        found.setdefault(email, why)
    for email, result in node_results.items():
        if not result.ok:
            found.setdefault(email, describe_node_result(result))
    for email, thread in zip(config.datasites, threads, strict=False):
        if thread.is_alive():
            found.setdefault(email, "did not stop after the run ended")
    return found


def run(
    project_dir: Path | str,
    mock_paths: list[Path | str],
    *,
    run_config: dict[str, Any] | None = None,
    timeout: float | None = None,
    network_dir: Path | str | None = None,
    metrics_port: int | None = None,
) -> SimulationResult:
    """Simulate the bootstrapped Flower app in ``project_dir`` on one mock folder per datasite.

    ``mock_paths`` are in the order of ``[tool.syft_flwr].datasites``. ``run_config`` overrides
    the app's ``[tool.flwr.app.config]``; ``timeout`` bounds each round's wait for replies.
    Logs go to ``<project>/simulation_logs/<email>.log``; outputs (figures/, weights/) to the
    project folder, the run's events to ``<project>/runs/<run_id>/events.jsonl``. The network
    is thrown away afterwards unless ``network_dir`` names where to keep it (point
    ``syft-flwr dashboard`` at it to watch the run); ``metrics_port`` serves Prometheus metrics
    during the run. Raises :class:`SimulationError` naming each datasite that failed.
    """
    import secrets

    collector.skip_collections_at_exit()  # a script's exit after a run: ~0.5 s less
    project_dir = Path(project_dir).expanduser().resolve()
    config = load_project_config(project_dir)
    mocks = [Path(p).expanduser().resolve() for p in mock_paths]
    _check_inputs(project_dir, mocks, config.datasites)
    with collector.loading_long_lived():  # flwr, the transport and the app load here
        from syft_flwr.apps import load_apps
        from syft_flwr.monitor import Heartbeat, HeartbeatSubscriber, monitor_run
        from syft_flwr.transport import DatasiteGrid, DatasiteNode

        apps = load_apps(project_dir)
    full_config = run_config_for(project_dir, run_config, resume=False)

    sim_id = uuid.uuid4().hex
    keep_network = network_dir is not None
    workdir = Path(tempfile.mkdtemp(prefix="syft_flwr_sim_"))
    network = Network(Path(network_dir).resolve() if keep_network else workdir / "network")
    log_dir = project_dir / LOG_FOLDER
    parties = [*config.datasites, config.aggregator]
    for email in parties:  # keys to authenticate and encrypt every message file
        Identity.create(network, email)
    started = time.time()
    failures: dict[str, str] = {}
    node_results: dict[str, Any] = {}

    with party_log_files(sim_id, log_dir, parties):
        run_id = secrets.randbits(62) + 1
        heartbeats = {
            email: Heartbeat(
                network, email, "aggregator" if email == config.aggregator else "datasite"
            )
            for email in parties
        }
        monitor = monitor_run(
            network,
            config.aggregator,
            run_id,
            config.app_name,
            project_dir,
            metrics_port=metrics_port,
        )
        grid = DatasiteGrid(
            network,
            config.app_name,
            config.aggregator,
            config.datasites,
            timeout=timeout,
            run_id=run_id,
            run_config=full_config,
            subscribers=[monitor, HeartbeatSubscriber(heartbeats[config.aggregator])],
        )
        nodes = {
            email: DatasiteNode(
                network,
                config.app_name,
                email,
                config.aggregator,
                apps.client_app,
                data_path=mock,
                run_config=full_config,
                heartbeat=heartbeats[email],
            )
            for email, mock in zip(config.datasites, mocks, strict=True)
        }

        def serve(email: str) -> None:
            with party_context(sim_id, email):
                try:
                    node_results[email] = nodes[email].serve()
                except BaseException as exc:  # the thread reports, the caller raises
                    logger.exception(f"datasite {email} crashed: {exc}")
                    failures[email] = f"crashed: {type(exc).__name__}: {exc}"

        def aggregate() -> None:
            with party_context(sim_id, config.aggregator):
                try:
                    context = grid.server_context()
                    context.node_config["project-dir"] = str(project_dir)
                    apps.server_app(grid, context)
                except BaseException as exc:
                    logger.exception(f"the ServerApp failed: {exc}")
                    failures[config.aggregator] = f"ServerApp raised {type(exc).__name__}: {exc}"
                    grid.finish(ok=False, failures={**grid.report.failures(), **failures})
                finally:
                    try:
                        grid.stop_datasites()
                    except OSError as exc:
                        failures.setdefault(config.aggregator, f"could not send stop: {exc}")
                        for node in nodes.values():  # in-process: stop them directly
                            node.stop()

        threads = [
            threading.Thread(target=serve, args=(e,), name=f"datasite-{e}", daemon=True)
            for e in config.datasites
        ]
        threads.append(threading.Thread(target=aggregate, name="aggregator", daemon=True))
        for heartbeat in heartbeats.values():
            heartbeat.start()
        for thread in threads:
            thread.start()
        try:
            threads[-1].join()
            for thread in threads[:-1]:
                thread.join(timeout=30)
            failures = _collect_failures(failures, grid.report, node_results, threads, config)
            grid.finish(ok=not failures, failures=failures)  # refused files alone: warnings
        finally:
            for node in nodes.values():
                node.stop()
            grid.close()
            monitor.close()
            for heartbeat in heartbeats.values():
                heartbeat.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    report = grid.report
    duration = time.time() - started

    if failures:
        failures = {who: _with_hint(why) for who, why in failures.items()}
        lines = "\n".join(f"  - {who}: {why}" for who, why in failures.items())
        raise SimulationError(
            f"simulation of {config.app_name} failed:\n{lines}\nlogs: {log_dir}",
            failures,
            log_dir,
        )
    if report.quarantined:
        logger.warning(f"simulation of {config.app_name}: {report.summary()}")
    return SimulationResult(
        project_dir=project_dir,
        app_name=config.app_name,
        rounds=report.server_rounds,
        participants=report.participants(),
        outputs=_outputs_since(project_dir, started - 1),
        log_dir=log_dir,
        duration=duration,
        report=report,
    )
