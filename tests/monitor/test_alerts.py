"""Alert rules (promtool), and a finished run's metrics staying up for a last scrape."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from syft_flwr.events import FileRefused, RoundMetrics
from syft_flwr.monitor import RunMonitor
from tests.monitor.helpers import free_port, wait_until
from tests.monitor.test_prometheus import PROMETHEUS, PROMTOOL, query
from tests.monitor.test_run_monitor import play
from tests.support import REPO, missing_tool

ALERTS = REPO / "monitoring" / "alerts.yml"
ALERT_TESTS = REPO / "monitoring" / "alerts_test.yml"
needs_promtool = pytest.mark.skipif(
    missing_tool(PROMTOOL), reason="/usr/bin/promtool is missing (Debian's `prometheus`)"
)
needs_prometheus = pytest.mark.skipif(
    missing_tool(PROMETHEUS), reason="/usr/bin/prometheus is missing (Debian's `prometheus`)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, timeout=60, cwd=ALERTS.parent
    )


@needs_promtool
def test_alert_rules_pass_their_promtool_tests() -> None:
    checked = _promtool("check", "rules", ALERTS.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 rules found" in checked.stdout
    tested = _promtool("test", "rules", ALERT_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    for alert in re.findall(r"alert: (\w+)", ALERTS.read_text()):
        assert f"alertname: {alert}" in ALERT_TESTS.read_text(), f"{alert} has no test"


def test_the_rules_use_metrics_the_toolkit_exports(tmp_path: Path) -> None:
    monitor = RunMonitor(tmp_path / "events.jsonl")
    monitor.on_event(FileRefused("/x", "bad MAC", "bad-mac"))
    monitor.on_event(RoundMetrics(1, {"accuracy": 0.7}))
    play(monitor)
    monitor.close()
    exported = set(
        re.findall(r"^(syft_flwr_\w+)", generate_latest(monitor.registry).decode(), re.M)
    )
    exported.add("syft_flwr_datasite_online")  # the dashboard's /metrics (ParticipantCollector)
    used = set(re.findall(r"syft_flwr_\w+", ALERTS.read_text()))
    assert used and used <= exported, used - exported


def test_close_waits_for_a_last_scrape_at_most_the_grace(tmp_path: Path) -> None:
    unseen = RunMonitor(tmp_path / "a.jsonl", scrape_grace=0.6)
    unseen.serve_metrics(0)
    play(unseen)
    started = time.monotonic()
    unseen.close()
    assert 0.6 <= time.monotonic() - started < 5

    seen = RunMonitor(tmp_path / "b.jsonl", scrape_grace=60)
    port = seen.serve_metrics(0)
    play(seen)
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    started = time.monotonic()
    seen.close()
    assert time.monotonic() - started < 2  # the final values were read already


@needs_prometheus
def test_prometheus_sees_a_run_shorter_than_its_scrape_interval(tmp_path: Path) -> None:
    """The whole run is over before Prometheus even starts; it still reads the final values."""
    monitor = RunMonitor(tmp_path / "events.jsonl", scrape_grace=60)
    metrics_port = monitor.serve_metrics(0)
    monitor.on_event(RoundMetrics(2, {"accuracy": 0.75}))
    play(monitor)
    closed = threading.Event()
    closer = threading.Thread(target=lambda: (monitor.close(), closed.set()))
    closer.start()
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\nscrape_configs:\n"
        f"  - job_name: run\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
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
        assert not closed.is_set()  # still serving: no scrape has come
        assert closed.wait(45), f"no final scrape: {log.read_text()[-2000:]}"

        def finished() -> list[float]:
            return [float(r["value"][1]) for r in query(prom_port, "syft_flwr_run_finished")]

        assert wait_until(finished, 30, "syft_flwr_run_finished in Prometheus") == [1.0]
        rounds = query(prom_port, "syft_flwr_rounds_completed")
        assert float(rounds[0]["value"][1]) == 2
        accuracy = query(prom_port, 'syft_flwr_round_metric{metric="accuracy",round="2"}')
        assert float(accuracy[0]["value"][1]) == 0.75
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        closer.join(timeout=70)
