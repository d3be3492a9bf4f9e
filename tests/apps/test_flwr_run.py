"""Plain Flower still runs the example apps: ``flwr run <app>`` with Flower's simulation engine
(Ray), no syft_flwr run active. Each simulated node reads its partition of the mock data
through its ``node_config`` (``partition-id`` of ``num-partitions``).

The test starts its own local SuperLink (free ports, its own ``FLWR_HOME``, no dependency
installation: the apps run in this environment) and stops it by its process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, copy_app

MOCK_DATA = REPO / "datasets" / "pima-indians-diabetes-database"
BIN = Path(sys.executable).parent
pytestmark = [
    pytest.mark.xdist_group("flwr_run"),  # one SuperLink and one Ray at a time
    pytest.mark.skipif(
        not (BIN / "flower-superlink").exists(), reason="flwr's command-line tools not installed"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def superlink(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of ``flwr`` commands that use a SuperLink started here."""
    pytest.importorskip("ray", reason="Flower's simulation engine needs the simulation extra")
    home = tmp_path / "flwr_home"
    http, control = _free_port(), _free_port()
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control),
        "FLWR_TELEMETRY_ENABLED": "0",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    home.mkdir()
    log = home / "superlink.log"
    proc = subprocess.Popen(
        [
            str(BIN / "flower-superlink"),
            "--insecure",
            "--simulation",
            "--isolation=subprocess",
            f"--control-api-address=127.0.0.1:{control}",
            "--host=127.0.0.1",
            f"--port={http}",
            f"--database={home / 'state.db'}",
            "--disable-runtime-dependency-installation",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(http):  # its HTTP API serves the control API too
            assert proc.poll() is None, f"the SuperLink exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the SuperLink did not start within 60 s"
            time.sleep(0.2)
        yield env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the SuperLink we started and its children
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _flwr_run(app: Path, env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [
            str(BIN / "flwr"),
            "run",
            str(app),
            "--stream",
            "--run-config",
            f"mock-data='{MOCK_DATA}' num-server-rounds=2",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert "Exception" not in output and "ERROR" not in output, output[-5000:]
    return output


def _installed(env: dict[str, str], name: str) -> Path:
    (found,) = (Path(env["FLWR_HOME"]) / "apps").glob(f"*{name}*")
    return found


def test_flwr_run_fed_analytics(superlink: dict[str, str], tmp_path: Path) -> None:
    app = copy_app(REPO / "fed-analytics-diabetes", tmp_path / "fed-analytics-diabetes")
    output = _flwr_run(app, superlink, tmp_path)
    assert "round 2: 2 of 2 datasite(s) answered" in output, output[-5000:]
    summary = json.loads(
        (_installed(superlink, "fed-analytics-diabetes") / "figures" / "summary.json").read_text()
    )
    # the two partitions together are all of the mock rows, each read once
    mock_rows = sum(
        len((MOCK_DATA / do / "mock" / f).read_text().strip().splitlines()) - 1
        for do in ("do1", "do2")
        for f in ("train.csv", "test.csv")
    )
    assert summary["complete"] is True and summary["datasites"] == 2
    assert sum(summary["rows"].values()) == mock_rows


def test_flwr_run_fl_diabetes_prediction(superlink: dict[str, str], tmp_path: Path) -> None:
    app = copy_app(REPO / "fl-diabetes-prediction", tmp_path / "fl-diabetes-prediction")
    output = _flwr_run(app, superlink, tmp_path)
    assert "round 2/2" in output, output[-5000:]
    weights = _installed(superlink, "fl-diabetes-prediction") / "weights"
    metrics = json.loads((weights / "metrics.json").read_text())
    assert [m["round"] for m in metrics] == [0, 1, 2]
    assert len(metrics[-1]["participants"]) == 2 and metrics[-1]["accuracy"] > 0.6
