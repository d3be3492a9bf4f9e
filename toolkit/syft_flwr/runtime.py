"""What a generated ``main.py`` runs: this party's role of a bootstrapped Flower app.

The aggregator (the data scientist) drives the ServerApp over a :class:`DatasiteGrid`; a
datasite (a data owner's approved job) serves the ClientApp on its data with a
:class:`DatasiteNode`. Exit codes: 0 when the party's part fully succeeded -- for the
aggregator, every datasite answered every round; files refused on the way without stopping
any datasite from answering are listed as warnings ("OK WITH WARNINGS", "run completed with
warnings"), see :class:`~syft_flwr.transport.report.RunReport`; 3 when the run finished but
some datasite failed or did not answer; 1 when it failed; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr.collector import loading_long_lived, skip_collections_at_exit
from syft_flwr.config import (
    CONFIG_ENV,
    JOB_ID_ENV,
    Identity,
    ProjectConfig,
    flower_run_config,
    load_project_config,
)
from syft_flwr.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, SyftFlwrError
from syft_flwr.logs import LEVEL_ENV, enable_logging, log_failure
from syft_flwr.utils import DATA_DIR_ENV

if TYPE_CHECKING:
    from syft_flwr.monitor import Heartbeat
    from syft_flwr.network import Network
    from syft_flwr.transport import DatasiteNode, NodeResult
    from syft_flwr.transport.settings import TransportSettings

NODE_CONFIG_ENV = "SYFT_FLWR_NODE_CONFIG"


def parse_config(text: str | list[str] | None) -> dict[str, Any]:
    """Parse Flower's ``key=value key2="text"`` syntax (TOML values) into a dict.

    Raises ValueError for a malformed string, with an example of the right syntax.
    """
    if not text:
        return {}
    from syft_flwr.transport import flwr_compat

    lines = [text] if isinstance(text, str) else list(text)
    try:
        return flwr_compat.parse_config_args(lines)
    except ValueError as exc:
        raise ValueError(
            f"could not parse config {' '.join(lines)!r}: use key=value pairs separated by "
            "spaces, e.g. \"num-server-rounds=3 strategy='fedavg'\""
        ) from exc


@dataclass
class AggregatorOutcome:
    """How an aggregator run ended; ``failures`` names each datasite that failed and why."""

    report: Any
    failures: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures


def run_config_for(project_dir: Path, overrides: dict[str, Any] | None, resume: bool) -> dict:
    run_config = flower_run_config(project_dir)
    run_config.update(overrides or {})
    if resume:
        run_config["resume"] = True
    return run_config


def run_aggregator(
    server_app: Any,
    network: Network,
    email: str,
    project_dir: Path,
    config: ProjectConfig,
    *,
    run_config: dict[str, Any],
    timeout: float | None = None,
    metrics_port: int | None = None,
    wait_online: float | None = None,
    settings: TransportSettings | None = None,
) -> AggregatorOutcome:
    """Run the loaded ``server_app`` of ``project_dir`` as ``email`` over ``network``.

    The run publishes the aggregator's heartbeat, writes ``<project>/runs/<run_id>/events.jsonl``
    and, with ``metrics_port``, serves Prometheus metrics on 127.0.0.1. With ``wait_online``
    (seconds), round 1 starts only once every datasite's heartbeat is online. The datasites
    are told to stop when the ServerApp returns or raises; the outcome says how it went.
    """
    import secrets

    from syft_flwr.monitor import (
        Heartbeat,
        HeartbeatSubscriber,
        monitor_run,
        wait_for_datasites,
    )
    from syft_flwr.monitor.progress import WaitProgress
    from syft_flwr.transport import DatasiteGrid

    run_id = secrets.randbits(62) + 1
    with Heartbeat(network, email, "aggregator") as heartbeat:
        heartbeat.update(app=config.app_name)
        if wait_online:
            wait_for_datasites(network, config.datasites, timeout=wait_online, progress=logger.info)
        monitor = monitor_run(
            network, email, run_id, config.app_name, project_dir, metrics_port=metrics_port
        )
        if monitor.metrics_port:
            logger.info(f"Prometheus metrics on http://127.0.0.1:{monitor.metrics_port}/metrics")
        progress = WaitProgress()
        grid = DatasiteGrid(
            network,
            config.app_name,
            email,
            config.datasites,
            timeout=timeout,
            run_id=run_id,
            run_config=run_config,
            subscribers=[monitor, HeartbeatSubscriber(heartbeat), progress],
            settings=settings,
        )
        outcome = AggregatorOutcome(report=grid.report)
        try:
            context = grid.server_context()
            context.node_config["project-dir"] = str(project_dir)
            server_app(grid, context)
        except BaseException as exc:  # reported, never swallowed as success
            log_failure(f"the ServerApp of {config.app_name} failed", exc)
            outcome.error = exc
        finally:
            try:
                grid.stop_datasites()
            except OSError as exc:  # e.g. a full disk: report it without hiding the outcome
                logger.error(f"could not send the stop message to the datasites: {exc}")
                outcome.error = outcome.error or exc
            outcome.failures = grid.report.failures()
            failures = dict(outcome.failures)
            if outcome.error is not None:
                failures[email] = f"ServerApp raised {outcome.error!r}"
            grid.finish(ok=not failures, failures=failures)  # refused files alone: warnings
            grid.close()
            progress.close()
            monitor.close()
            _draw_training(project_dir, run_id, grid.report.metrics, config.app_name)
    return outcome


def _draw_training(project_dir: Path, run_id: int, metrics: dict, app: str) -> None:
    """The run's loss/accuracy/AUC figure; a figure that cannot be drawn is only a warning."""
    from syft_flwr.monitor.figures import write_training_figures

    try:
        for path in write_training_figures(project_dir, run_id, metrics, app):
            logger.info(f"training figure: {path}")
    except (OSError, ValueError) as exc:
        logger.warning(f"could not draw the training figure: {exc}")


#: what every datasite's node_config says, as in syft-flwr 0.5: a datasite's own data is
#: the whole data set, so it is partition 0 of 1
SINGLE_PARTITION = {"partition-id": 0, "num-partitions": 1}


def datasite_node_config(
    run_config: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A datasite's ``node_config`` before ``data-path`` is added: the run config (the app's
    ``[tool.flwr.app.config]`` with the run's overrides), ``partition-id = 0``,
    ``num-partitions = 1``, then the data owner's own ``overrides`` (its node config)."""
    return {**run_config, **SINGLE_PARTITION, **(overrides or {})}


def datasite_node(
    client_app: Any,
    network: Network,
    email: str,
    config: ProjectConfig,
    data_dir: Path,
    *,
    run_config: dict[str, Any],
    node_config: dict[str, Any] | None = None,
    idle_timeout: float | None = None,
    heartbeat: Heartbeat | None = None,
    settings: TransportSettings | None = None,
) -> DatasiteNode:
    """The node that serves the loaded ``client_app`` for datasite ``email`` on ``data_dir``.

    Its ``node_config`` is :func:`datasite_node_config` of ``run_config`` and ``node_config``.
    """
    from syft_flwr.transport import DatasiteNode

    return DatasiteNode(
        network,
        config.app_name,
        email,
        config.aggregator,
        client_app,
        data_path=Path(data_dir),
        node_config=datasite_node_config(run_config, node_config),
        run_config=run_config,
        idle_timeout=idle_timeout,
        heartbeat=heartbeat,
        settings=settings,
    )


def run_datasite(
    client_app: Any,
    network: Network,
    email: str,
    config: ProjectConfig,
    data_dir: Path,
    *,
    run_config: dict[str, Any],
    node_config: dict[str, Any] | None = None,
    idle_timeout: float | None = None,
) -> NodeResult:
    """Serve the loaded ``client_app`` for ``email`` on ``data_dir`` on this thread until
    the aggregator says stop (or the idle timeout), publishing the datasite's heartbeat."""
    from syft_flwr.monitor import Heartbeat

    with Heartbeat(network, email, "datasite") as heartbeat:
        # the job runner names the job it runs; a datasite started by hand has none
        heartbeat.update(app=config.app_name, job=os.environ.get(JOB_ID_ENV) or None)
        spec = getattr(client_app, "spec", None)  # a sandboxed ClientApp: show its limits
        if spec is not None:
            heartbeat.update(limits=spec.limits.describe())
        node = datasite_node(
            client_app,
            network,
            email,
            config,
            data_dir,
            run_config=run_config,
            node_config=node_config,
            idle_timeout=idle_timeout,
            heartbeat=heartbeat,
        )
        if hasattr(client_app, "on_dead"):  # a sandboxed ClientApp: its death ends the job
            client_app.on_dead = node.stop
        return node.serve()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description=(
            "Run this party's part of a syft_flwr Flower app. The aggregator (the data "
            "scientist) runs the ServerApp; a datasite (a data owner's approved job) serves "
            "the ClientApp on its data. Who you are comes from the identity file."
        ),
    )
    parser.add_argument(
        "--active", action="store_true", help="run now, in the role your identity has"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"identity file of this party (default: ${CONFIG_ENV})",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="aggregator: continue from the last saved round (apps that save rounds)",
    )
    parser.add_argument(
        "--run-config",
        default=None,
        help='aggregator: override run config values, e.g. "num-server-rounds=3"',
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="aggregator: seconds to wait for the datasites' replies each round "
        "(default: $SYFT_FLWR_MSG_TIMEOUT or 120)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="aggregator: serve Prometheus metrics on 127.0.0.1:PORT during the run",
    )
    parser.add_argument(
        "--wait-online",
        type=float,
        default=None,
        metavar="SECONDS",
        help="aggregator: wait up to SECONDS for every datasite to be online before round 1",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"datasite: the data the ClientApp reads (default: ${DATA_DIR_ENV})",
    )
    parser.add_argument(
        "--node-config",
        default=None,
        help=f'datasite: node settings, e.g. "local-epochs=2" (default: ${NODE_CONFIG_ENV})',
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="datasite: stop after this many seconds without a message "
        "(default: $SYFT_FLWR_IDLE_TIMEOUT or 600)",
    )
    return parser


def _configure_logging() -> None:
    enable_logging(os.environ.get(LEVEL_ENV, "INFO"))


def main(project_dir: Path, argv: list[str] | None = None) -> int:
    """Entry point of a generated ``main.py``; returns the process exit code."""
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    skip_collections_at_exit()
    args = _parser().parse_args(argv)
    _configure_logging()
    if not args.active and not os.environ.get(DATA_DIR_ENV):
        print(
            "Nothing to do: run `python main.py --active` to take your part in the run "
            "(see --help). A data owner's job runner starts main.py with DATA_DIR set.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        identity = Identity.load(args.config)
        config = load_project_config(project_dir)
        role = config.role_of(identity.email)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from syft_flwr.syftbox.run import prepare_syftbox_run

    try:
        prepare_syftbox_run(identity, config, role)
        if role == "aggregator":
            return _aggregate(project_dir, identity, config, args)
        return _serve(project_dir, identity, config, args)
    except (SyftFlwrError, OSError, ValueError) as exc:  # AppLoadError, SandboxError, ...
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _aggregate(project_dir: Path, identity: Identity, config: ProjectConfig, args) -> int:
    logger.info(
        f"{identity.email}: aggregating {config.app_name} over {', '.join(config.datasites)}"
    )
    with loading_long_lived():  # flwr, the transport and the app load here
        from syft_flwr.apps import load_server_app

        server_app = load_server_app(project_dir)
    outcome = run_aggregator(
        server_app,
        identity.network,
        identity.email,
        project_dir,
        config,
        run_config=run_config_for(project_dir, parse_config(args.run_config), args.resume),
        timeout=args.timeout,
        metrics_port=args.metrics_port,
        wait_online=args.wait_online,
    )
    return report_outcome(outcome)


def report_outcome(outcome: AggregatorOutcome) -> int:
    """Print how an aggregator's run went (the report's summary, then each failure) and
    return ``main.py``'s exit code for it."""
    print(outcome.report.summary())
    for email, why in outcome.failures.items():
        print(f"datasite {email} failed: {why}", file=sys.stderr)
    if outcome.error is not None:
        print(f"FAILED: the ServerApp raised {outcome.error!r}", file=sys.stderr)
        return EXIT_FAILED
    if outcome.failures:
        print("FINISHED WITH FAILURES: the results leave out the datasites above", file=sys.stderr)
        return EXIT_PARTIAL
    refused = len(outcome.report.quarantined)
    if refused:
        print(
            "run completed with warnings: every datasite answered every round; "
            f"{refused} file(s) were refused and set aside (listed above)"
        )
        return EXIT_OK
    print("run completed: every datasite answered every round")
    return EXIT_OK


def _serve(project_dir: Path, identity: Identity, config: ProjectConfig, args) -> int:
    data_dir = args.data_dir or (
        Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else None
    )
    if data_dir is None or not Path(data_dir).exists():
        print(
            f"error: {identity.email} is a datasite of {config.app_name} but has no data: set "
            f"{DATA_DIR_ENV} or pass --data-dir (a data owner's job runner sets it)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    node_config = parse_config(args.node_config or os.environ.get(NODE_CONFIG_ENV))
    logger.info(f"{identity.email}: serving {config.app_name} for {config.aggregator}")
    from syft_flwr.sandbox.limits import SandboxSpec

    spec = SandboxSpec.from_env()  # the job runner's: the ClientApp runs in a sandbox
    if spec is not None:
        from syft_flwr.sandbox.client import SandboxedClientApp

        client_app = SandboxedClientApp(project_dir, spec, wait=False)  # loads meanwhile
    with loading_long_lived():  # flwr, the transport and the app load here
        if spec is None:
            from syft_flwr.apps import load_client_app

            client_app = load_client_app(project_dir)
        else:  # the node serves at once; the first message waits for the worker if need be
            import syft_flwr.transport  # noqa: F401 - loaded while the worker loads the app
    try:
        result = run_datasite(
            client_app,
            identity.network,
            identity.email,
            config,
            Path(data_dir),
            run_config=run_config_for(project_dir, None, False),
            node_config=node_config,
            idle_timeout=args.idle_timeout,
        )
    finally:
        if spec is not None:
            client_app.close()
    print(f"{identity.email}: {describe_node_result(result)}")
    return EXIT_OK if result.ok else EXIT_FAILED


_STOPPED_BECAUSE = {
    "stop-message": "stopped when the aggregator said the run was over",
    "idle-timeout": "stopped at the idle timeout, before the aggregator said the run was over",
    "stopped": "was stopped before the aggregator said the run was over",
}


def describe_node_result(result: NodeResult) -> str:
    """A datasite's :class:`NodeResult` as a sentence, e.g. "answered 2 messages and stopped
    when the aggregator said the run was over; the ClientApp raised ValueError: boom"."""
    n = result.answered
    stopped = _STOPPED_BECAUSE.get(result.reason, f"stopped ({result.reason})")
    parts = [f"answered {n} message{'' if n == 1 else 's'} and {stopped}"]
    if result.app_errors:
        shown = "; ".join(f"{e.exception_type}: {e.message}" for e in result.app_errors[:3])
        more = len(result.app_errors) - 3
        parts.append(f"the ClientApp raised {shown}" + (f" (and {more} more)" if more > 0 else ""))
    if result.undelivered:
        parts.append(f"{len(result.undelivered)} reply file(s) could not be written")
    if result.refusals:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(result.refusals.items()))
        parts.append(f"refused {len(result.quarantined)} file(s) ({kinds})")
    return "; ".join(parts)
