"""Text views for the terminal (``syft-flwr status``) and the dashboard's entry point."""

from __future__ import annotations

import threading
from pathlib import Path

from syft_flwr.monitor.participants import DEFAULT_OFFLINE_AFTER, Participant, list_participants
from syft_flwr.monitor.runs import RunInfo, list_runs
from syft_flwr.network.layout import Network


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _pct(value: object) -> str:
    return f"{value:.0f}%" if isinstance(value, int | float) else "-"


def _mb(value: object) -> str:
    return f"{value / 2**20:.0f}MB" if isinstance(value, int | float) else "-"


def _running(p: Participant) -> str:
    r = p.running or {}
    parts = [
        str(r["app"]) if r.get("app") else "",
        f"job {r['job']}" if r.get("job") else "",
        f"round {r['round']}" if r.get("round") is not None else "",
        f"(sandbox: {r['limits']})" if r.get("limits") else "",
    ]
    return " ".join(x for x in parts if x) or "-"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in lines
    )


def format_status(network: Network, *, offline_after: float = DEFAULT_OFFLINE_AFTER) -> str:
    """A table of every datasite: state, heartbeat age, role, cpu, memory, what it runs."""
    people = list_participants(network, offline_after=offline_after)
    if not people:
        return f"no datasites on the network at {network.root}"
    rows = []
    for p in people:
        cpu, mem = p.cpu or {}, p.memory or {}
        rows.append(
            [
                p.email,
                p.state,
                _age(p.heartbeat_age),
                p.role or "-",
                f"{_pct(cpu.get('process'))} / {_pct(cpu.get('machine'))}",
                f"{_mb(mem.get('process_rss_bytes'))} / {_pct(mem.get('machine_percent'))}",
                _running(p),
            ]
        )
    header = ["DATASITE", "STATE", "HEARTBEAT", "ROLE", "CPU proc/host", "MEM proc/host", "RUNNING"]
    online = sum(p.online for p in people)
    return f"{_table(header, rows)}\n{online}/{len(people)} online"


def format_runs(runs: list[RunInfo]) -> str:
    """A table of runs: id, app, status, rounds completed, failures."""
    if not runs:
        return "no runs registered"
    rows = [
        [
            r.run_id,
            r.app_name,
            r.status,
            str(r.rounds_completed),
            ", ".join(f"{e}: {why}" for e, why in r.failures.items()) or "-",
        ]
        for r in runs
    ]
    return _table(["RUN", "APP", "STATUS", "ROUNDS", "FAILURES"], rows)


def _network(root: Path, key: str) -> Network:
    """The network ``root/key``; ``root`` itself when it is the network folder already."""
    network = Network.at(root, key)
    given = Path(root).expanduser().resolve()
    if not network.root.is_dir() and (given / "datasites").is_dir():
        return Network(given)  # --root named the network folder itself
    if not network.root.is_dir():
        raise FileNotFoundError(
            f"no network at {network.root}: pass the --root (and --key) of an existing network, "
            "e.g. the folder `syft-flwr demo` created"
        )
    return network


def status_main(root: Path, key: str = "local_syftbox_network") -> str:
    """What ``syft-flwr status`` prints: datasites, then runs. FileNotFoundError if no network."""
    network = _network(root, key)
    text = format_status(network)
    runs = list_runs(network)
    if runs:
        text += "\n\n" + format_runs(runs)
    print(text)
    return text


def dashboard_main(
    root: Path,
    key: str = "local_syftbox_network",
    port: int = 8050,
    *,
    host: str = "127.0.0.1",
    stop: threading.Event | None = None,
) -> None:
    """Serve the dashboard until Ctrl-C (or until ``stop`` is set)."""
    from syft_flwr.monitor.dashboard import serve_dashboard

    network = _network(root, key)
    server = serve_dashboard(network, port=port, host=host)
    print(f"dashboard of {network.root} at {server.url} (Ctrl-C to stop)", flush=True)
    stop = stop or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
