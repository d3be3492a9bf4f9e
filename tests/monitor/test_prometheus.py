"""A real Prometheus (Debian's package) scrapes a live run's metrics server."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from syft_flwr.monitor import serve_dashboard
from syft_flwr.network.layout import Network
from tests.monitor.helpers import free_port, wait_until
from tests.support import AGGREGATOR, DATASITES, REPO, missing_tool

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
GRAFANA_DASHBOARD = REPO / "monitoring" / "grafana" / "syft-flwr-dashboard.json"

pytestmark = pytest.mark.skipif(
    missing_tool(PROMETHEUS),
    reason="/usr/bin/prometheus is missing: install Debian's `prometheus` package to run this test",
)


def query(port: int, expr: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.load(resp)
    assert data["status"] == "success", data
    return data["data"]["result"]


def grafana_queries() -> list[str]:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    # Grafana fills in $__rate_interval; Prometheus alone needs a real window
    return [e.replace("$__rate_interval", "1m") for e in exprs]


@pytest.mark.skipif(
    missing_tool(PROMTOOL),
    reason="/usr/bin/promtool is missing (Debian's `prometheus` package ships it)",
)
def test_shipped_prometheus_config_is_valid():
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", str(REPO / "monitoring" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_a_live_run(network: Network, producer, tmp_path: Path):
    rounds = 3
    live = producer(rounds=rounds, round_delay=0.5)
    metrics_port = live.monitor.serve_metrics(0)
    dash = serve_dashboard(network)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: syft_flwr\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
        "  - job_name: syft_flwr_network\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{dash.port}']\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        live.start(hold_before_end=True)

        def ready() -> bool:
            assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
            with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/-/ready", timeout=2) as r:
                return r.status == 200

        wait_until(ready, 60, "prometheus to be ready")

        def rounds_seen() -> float | None:
            assert proc.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
            result = query(prom_port, "syft_flwr_rounds_completed")
            return float(result[0]["value"][1]) if result else None

        # the value climbs while the run is live ...
        first = wait_until(rounds_seen, 60, "a first scrape of syft_flwr_rounds_completed")
        assert 0 <= first <= rounds
        # ... and reaches the number of rounds
        wait_until(lambda: rounds_seen() == rounds, 60, f"syft_flwr_rounds_completed == {rounds}")

        live.hold.set()
        live.wait()
        assert wait_until(
            lambda: (
                [float(r["value"][1]) for r in query(prom_port, "syft_flwr_run_finished")] == [1.0]
            ),
            60,
            "syft_flwr_run_finished == 1",
        )
        sent = query(prom_port, "syft_flwr_messages_sent_total")
        assert {r["metric"]["datasite"]: float(r["value"][1]) for r in sent} == {
            e: float(rounds) for e in DATASITES
        }
        up = {r["metric"]["job"]: float(r["value"][1]) for r in query(prom_port, "up")}
        assert up == {"syft_flwr": 1.0, "syft_flwr_network": 1.0}
        online = query(prom_port, 'syft_flwr_datasite_online{job="syft_flwr_network"}')
        assert {r["metric"]["datasite"] for r in online} == {AGGREGATOR, *DATASITES}

        # every query of the shipped Grafana dashboard is valid PromQL over these metrics
        for expr in grafana_queries():
            query(prom_port, expr)  # raises on a parse or evaluation error
        assert float(query(prom_port, grafana_queries()[0])[0]["value"][1]) == rounds
    finally:
        dash.shutdown()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)
