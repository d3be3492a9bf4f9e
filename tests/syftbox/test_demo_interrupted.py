"""`syft-flwr demo --syftbox` stopped half-way (SIGTERM, as Ctrl-C) stops every process it
started: the server and the clients are gone, the exit code says it was interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.real_syftbox, pytest.mark.xdist_group("syftbox")]


def _pids_under(folder: Path) -> list[int]:
    """SyftBox processes whose command line or environment names ``folder`` (the demo's
    clients, by their data folder, and its server, by its data folder variable)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if b"syftbox" in cmd and os.fsencode(str(folder)) in cmd + env:
                pids.append(int(entry.name))
    return pids


def test_an_interrupted_demo_stops_the_server_and_clients(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "syft_flwr.cli", "demo", "--syftbox", "--folder", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_pids_under(folder / "syftbox")) < 4:  # server + three clients
            assert proc.poll() is None and time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert b"DEMO FAILED: interrupted" in err
    assert _pids_under(folder / "syftbox") == []
