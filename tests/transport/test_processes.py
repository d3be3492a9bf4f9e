"""Datasite nodes in real OS processes, the grid in the test process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from syft_flwr.network import Network
from syft_flwr.transport import DatasiteGrid
from tests.transport.helpers import AGGREGATOR, create_identities, datasite

SCRIPT = Path(__file__).with_name("node_script.py")
VALUES = {datasite(1): [1.0, 2.0, 3.5, 7.0], datasite(2): [10.0, 20.0, 30.0]}


@pytest.fixture
def node_processes(tmp_path: Path):
    network = Network.at(tmp_path / "net")
    create_identities(network, [AGGREGATOR, *VALUES])
    procs = {}
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    try:
        for email, values in VALUES.items():
            data = tmp_path / "data" / email
            data.mkdir(parents=True)
            (data / "values.txt").write_text("\n".join(map(str, values)))
            log = open(tmp_path / f"{email}.log", "wb")  # noqa: SIM115 - closed below
            procs[email] = (
                subprocess.Popen(
                    [
                        sys.executable,
                        str(SCRIPT),
                        str(network.root),
                        "stats-app",
                        email,
                        AGGREGATOR,
                        str(data),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                ),
                log,
            )
        yield network, procs
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            log.close()


def test_nodes_in_processes_compute_what_numpy_computes(node_processes, tmp_path: Path) -> None:
    network, procs = node_processes
    emails = list(VALUES)
    with DatasiteGrid(network, "stats-app", AGGREGATOR, emails, timeout=60) as grid:
        config = RecordDict({"config": ConfigRecord({"shift": 0.5})})
        replies = list(
            grid.send_and_receive(
                [Message(config, grid.node_id_of(email), "query") for email in emails]
            )
        )
        assert grid.report.ok, grid.report.summary()
        grid.stop_datasites()

    stats = [r.content["stats"] for r in replies]
    count = sum(s["count"] for s in stats)
    mean = sum(s["sum"] for s in stats) / count
    var = sum(s["sumsq"] for s in stats) / count - mean**2

    everything = np.array([v for values in VALUES.values() for v in values]) + 0.5
    assert count == len(everything)
    assert mean == pytest.approx(everything.mean())
    assert var == pytest.approx(everything.var())
    assert {grid.email_of(r.metadata.src_node_id) for r in replies} == set(emails)

    for email, (proc, _) in procs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, (tmp_path / f"{email}.log").read_text()
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["reason"] == "stop-message"
        assert result["answered"] == 1 and result["app_errors"] == []
