"""`syft-flwr demo --syftbox` end to end over a real SyftBox server: the summary, every process
stopped, and no private row on the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syft_flwr import demo
from syft_flwr.demo import DATASET, REPO, run_demo
from syft_flwr.syftbox import cluster

pytestmark = [pytest.mark.real_syftbox, pytest.mark.xdist_group("syftbox")]


def _private_rows() -> set[bytes]:
    """Rows of the data owners' private data that are not also in their mock data."""
    base = REPO / "datasets" / DATASET
    rows: set[bytes] = set()
    mock: set[bytes] = set()
    for do in ("do1", "do2"):
        for csv in (base / do / "private").glob("*.csv"):
            rows |= set(csv.read_bytes().splitlines()[1:])
        for csv in (base / do / "mock").glob("*.csv"):
            mock |= set(csv.read_bytes().splitlines()[1:])
    return {r for r in rows - mock if r.strip()}


def test_demo_over_syftbox(tmp_path: Path, capsys, monkeypatch) -> None:
    started: list = []
    spawn = cluster.LocalSyftBox._spawn

    def recording(self, *args, **kwargs):
        proc = spawn(self, *args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(cluster.LocalSyftBox, "_spawn", recording)
    folder = tmp_path / "demo"
    assert run_demo(folder, syftbox=True) == 0
    out = capsys.readouterr().out
    assert "over SyftBox (server http://127.0.0.1:" in out
    assert "datasites:         do1@openmined.org, do2@openmined.org (2)" in out
    assert "rows contributed:  768" in out
    assert f"{demo.DS_EMAIL} received do1@openmined.org's results" in out
    # a server and three clients, all stopped (their process groups are gone)
    assert len(started) == 4
    for proc in started:
        assert proc.returncode is not None
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    # the private rows stayed with the data owners: none is stored on the server
    private = _private_rows()
    assert len(private) > 100
    stored = [p for p in (folder / "syftbox" / "server").rglob("*") if p.is_file()]
    assert any("mock" in p.parts for p in stored), "the mock data was published"
    for path in stored:
        data = path.read_bytes()
        leaked = [r for r in private if r in data]
        assert not leaked, f"{path} holds private rows, e.g. {leaked[0]!r}"
    assert (folder / "syftbox" / "do1" / "private" / "do1@openmined.org").is_dir()
