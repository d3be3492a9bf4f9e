"""The ``syft-flwr`` command."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from syft_flwr.errors import EXIT_FAILED, SyftFlwrError, exit_code_of
from syft_flwr.utils import plural

app = typer.Typer(
    help="Run Flower apps where the data lives: bootstrap, simulate, run the demo.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _main() -> None:
    """Run Flower apps where the data lives: bootstrap, simulate, run the demo."""
    from syft_flwr.logs import LEVEL_ENV, enable_logging

    enable_logging(os.environ.get(LEVEL_ENV, "INFO"))


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def bootstrap(
    project: Path = typer.Argument(..., help="folder of the Flower app (with pyproject.toml)"),
    aggregator: str = typer.Option(..., help="email of the aggregator (the data scientist)"),
    datasite: list[str] = typer.Option(..., help="email of a data owner; repeat for each"),
    overwrite: bool = typer.Option(False, help="rewrite an already bootstrapped project"),
) -> None:
    r"""Write \[tool.syft_flwr] into the app's pyproject.toml and generate main.py."""
    from syft_flwr.bootstrap import bootstrap as do_bootstrap

    try:
        main_path = do_bootstrap(project, aggregator, datasite, overwrite=overwrite)
    except (SyftFlwrError, OSError, ValueError) as exc:
        _fail(str(exc), EXIT_FAILED)  # 1 even for bad arguments, as this command always did
    typer.echo(f"bootstrapped {project}: {main_path} generated")


@app.command()
def run(
    project: Path = typer.Argument(..., help="folder of a bootstrapped Flower app"),
    mock: list[Path] = typer.Option(..., help="mock data folder of a datasite, in order"),
    run_config: str = typer.Option(None, help='override run config, e.g. "num-server-rounds=3"'),
    timeout: float = typer.Option(None, help="seconds to wait for replies each round"),
) -> None:
    """Simulate the federation on mock data (one thread per datasite, real transport)."""
    from syft_flwr.runtime import parse_config
    from syft_flwr.simulation import run as simulate

    try:
        result = simulate(project, mock, run_config=parse_config(run_config), timeout=timeout)
    except (SyftFlwrError, OSError, ValueError) as exc:
        # a failed run (SimulationError) exits 1; a wrong app (AppLoadError) or input exits 2
        _fail(str(exc), exit_code_of(exc))
    typer.echo(
        f"simulation of {result.app_name} completed: {plural(result.rounds, 'round')}, "
        f"{result.duration:.2f} s"
    )
    for round_no, emails in sorted(result.participants.items()):
        typer.echo(f"  round {round_no}: {', '.join(emails)}")
    if result.final_metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.final_metrics.items()))
        typer.echo(f"  final metrics: {shown}")
    for path in result.outputs:
        typer.echo(f"  output: {path}")
    typer.echo(f"  logs: {result.log_dir}")


@app.command()
def demo(
    folder: Path = typer.Option(Path("demo_network"), help="where the demo network is created"),
    fl: bool = typer.Option(False, "--fl", help="train the model (fl-diabetes-prediction)"),
    syftbox: bool = typer.Option(
        False, "--syftbox", help="each party a SyftBox client of a server on 127.0.0.1"
    ),
) -> None:
    """Run the whole data scientist / data owner workflow headless on a local network."""
    from syft_flwr.demo import run_demo

    raise typer.Exit(run_demo(folder, fl=fl, syftbox=syftbox))


@app.command()
def status(
    root: Path = typer.Option(Path("."), help="folder that holds the network"),
    key: str = typer.Option("local_syftbox_network", help="the network's folder name"),
) -> None:
    """List the network's datasites (online, heartbeat age, load) and its runs."""
    from syft_flwr.monitor import status_main

    try:
        status_main(root, key)
    except (SyftFlwrError, OSError, ValueError) as exc:
        _fail(str(exc), exit_code_of(exc))


@app.command()
def dashboard(
    root: Path = typer.Option(Path("."), help="folder that holds the network"),
    key: str = typer.Option("local_syftbox_network", help="the network's folder name"),
    port: int = typer.Option(8050, help="port on 127.0.0.1 (0 picks a free one)"),
) -> None:
    """Serve a live page on localhost: datasites, runs, rounds, latency, figures."""
    from syft_flwr.monitor import dashboard_main

    try:
        dashboard_main(root, key, port)
    except (SyftFlwrError, OSError, ValueError) as exc:
        _fail(str(exc), exit_code_of(exc))


keys_app = typer.Typer(
    help="The other parties' keys as you pinned them at first contact (trust on first use).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("show")
def keys_show(
    reader: str = typer.Option(..., "--as", help="your email (whose pins are shown)"),
    root: Path = typer.Option(Path("."), help="folder that holds the network"),
    key: str = typer.Option("local_syftbox_network", help="the network's folder name"),
) -> None:
    """Print each party's key fingerprint, pinned and published, to compare out of band."""
    from syft_flwr.crypto import show_fingerprints
    from syft_flwr.network import Network

    try:
        show_fingerprints(Network.at(root, key), reader)
    except (SyftFlwrError, OSError, ValueError) as exc:
        _fail(str(exc), exit_code_of(exc))


@keys_app.command("accept")
def keys_accept(
    peer: str = typer.Argument(..., help="the party whose new keys you checked out of band"),
    reader: str = typer.Option(..., "--as", help="your email (whose pin is replaced)"),
    root: Path = typer.Option(Path("."), help="folder that holds the network"),
    key: str = typer.Option("local_syftbox_network", help="the network's folder name"),
) -> None:
    """Pin PEER's keys as published now (accept a key rotation on purpose)."""
    from syft_flwr.crypto import accept_key
    from syft_flwr.network import Network

    try:
        keys = accept_key(Network.at(root, key), reader, peer)
    except (SyftFlwrError, OSError, ValueError) as exc:
        _fail(str(exc), exit_code_of(exc))
    typer.echo(f"{reader} now trusts {peer}'s keys, fingerprint {keys.long_fingerprint}")


@app.command()
def version() -> None:
    """Print the toolkit's version."""
    from syft_flwr import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
