"""The dashboard and Prometheus following a real simulation (real grid, nodes, app)."""

import json
import os
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

import syft_flwr
from syft_flwr.monitor import serve_dashboard
from syft_flwr.network.layout import Network
from tests.monitor.browser import CHROMIUM, Browser
from tests.monitor.helpers import free_port, wait_until
from tests.monitor.test_dashboard_browser import parse
from tests.monitor.test_prometheus import PROMETHEUS, query
from tests.support import AGGREGATOR, DATASITES, missing_tool

ROUNDS = 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: if set, the screenshot of the live run is also copied into this folder (e.g. a CI artifact)
SCREENSHOT_DIR_ENV = "SYFT_FLWR_SCREENSHOT_DIR"


def _api(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def _simulate(project: Path, data: list[Path], net: Path, **kwargs) -> threading.Thread:
    syft_flwr.bootstrap(project, aggregator=AGGREGATOR, datasites=DATASITES)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            syft_flwr.run(
                project,
                data,
                network_dir=net,
                run_config={"num-server-rounds": ROUNDS, "round-delay": 0.6},
                **kwargs,
            )
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


@pytest.mark.skipif(missing_tool(CHROMIUM), reason="Debian's chromium is not installed")
def test_dashboard_follows_a_live_simulation(tiny_app, tiny_data, tmp_path: Path) -> None:
    net = tmp_path / "net"
    with serve_dashboard(Network(net)) as dash:
        sim = _simulate(tiny_app, tiny_data, net)

        def advancing():
            runs = _api(f"{dash.url}/api/runs")["runs"]
            live = [r for r in runs if r["status"] == "running" and r["rounds_completed"] >= 1]
            return live[0] if live else None

        live = wait_until(advancing, 60, "the live run to complete a round")
        assert live["rounds_completed"] < ROUNDS  # seen while still running
        sim.join(timeout=120)
        assert not sim.errors, sim.errors

        with Browser(tmp_path / "profile") as browser:
            tab = browser.open(dash.url)

            def shown():
                dom = parse(tab)
                detail = dom.find(id="run-detail")
                return dom if detail and detail[0].get("data-status") == "completed" else None

            page = wait_until(shown, 60, "the completed run on the page")
            (tmp_path / "page.html").write_text(str(page.elements))
            for email in DATASITES:
                assert page.find(**{"_tag": "tr", "data-datasite": email}), email
            detail = page.find(id="run-detail")[0]
            assert detail["data-status"] == "completed"
            assert detail["data-rounds-completed"] == str(ROUNDS)
            assert detail["data-run-id"] == str(live["run_id"])  # the page shows the live run
            shot = tab.screenshot(tmp_path / "live-simulation.png")
    assert shot.is_file(), "chromium saved no screenshot"
    assert shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_DIR_ENV):
        folder = Path(os.environ[SCREENSHOT_DIR_ENV])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, folder / shot.name)
        assert (folder / shot.name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.skipif(missing_tool(PROMETHEUS), reason="Debian's prometheus is not installed")
def test_prometheus_counts_the_rounds_of_a_live_simulation(tiny_app, tiny_data, tmp_path):
    metrics_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\nscrape_configs:\n"
        f"  - job_name: sim\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2) as r:
                return r.status == 200

        wait_until(ready, 60, "prometheus to be ready")
        # targets are applied after discovery's reload interval: wait for the first scrape
        # (of a port with nothing on it yet: up == 0) before the run starts
        wait_until(lambda: query(prom_port, "up"), 60, "prometheus's first scrape")
        sim = _simulate(tiny_app, tiny_data, tmp_path / "net", metrics_port=metrics_port)
        sim.join(timeout=120)
        assert not sim.errors, sim.errors

        def reached() -> bool:
            series = query(prom_port, "max_over_time(syft_flwr_rounds_completed[5m])")
            return bool(series) and float(series[0]["value"][1]) == ROUNDS

        wait_until(reached, 30, f"prometheus to have seen {ROUNDS} completed rounds")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
