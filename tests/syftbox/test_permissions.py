"""The permission files the toolkit writes, enforced by a real SyftBox server: a write where a
party may not write never arrives anywhere (not on the server, not at the owner)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syft_flwr.syftbox import join_syftbox
from syft_flwr.syftbox.cluster import LocalSyftBox
from syft_flwr.syftbox.permissions import grant_inbox, share_job_results
from tests.syftbox.helpers import wait_until

pytestmark = [pytest.mark.real_syftbox, pytest.mark.xdist_group("syftbox")]

DS, DO, OTHER, APP = "ds@openmined.org", "do1@openmined.org", "eve@openmined.org", "app"
SYNC_ROUNDS = 3.0  # seconds: three sync cycles of the clients


def test_each_party_writes_only_where_the_toolkit_allows(tmp_path: Path) -> None:
    with LocalSyftBox(tmp_path / "sb") as box:
        net = {}
        for email, name in ((DS, "ds"), (DO, "do"), (OTHER, "eve")):
            client = box.add_client(email, name)
            join_syftbox(data_dir=client.data_dir, email=email)
            net[email] = client.workspace.network
        server = box.snapshot_dir
        do_jobs = {e: net[e].jobs_dir(DO) for e in net}
        grant_inbox(net[DO], DO, APP, [DS])

        def write(email: str, path: Path, text: str) -> Path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return path

        def on_server(path: Path, email: str) -> Path:
            return server / path.relative_to(net[email].datasites_dir)

        # every guest reads public files; the DS's job submission arrives
        wait_until((net[OTHER].public_keys_path(DO)).is_file, "public keys at a guest")
        request = write(DS, do_jobs[DS] / "j1" / "request.json", "signed by ds")
        wait_until((do_jobs[DO] / "j1" / "request.json").is_file, "the DS's job at the DO")
        wait_until((do_jobs[OTHER] / "j1" / "request.json").is_file, "the job at another guest")

        # forbidden writes, each followed by an allowed one from the same party
        forbidden = [
            write(DS, net[DS].public_dir(DO) / "defaced.txt", "x"),
            write(DS, net[DS].datasite(DO) / "app_data" / "other" / "x.txt", "x"),
            write(OTHER, do_jobs[OTHER] / "j1" / "request.json", "forged by eve"),
            write(OTHER, net[OTHER].flwr_inbox(DO, APP) / "e.msg", "not a party of the run"),
        ]
        control_ds = write(DS, net[DS].flwr_inbox(DO, APP) / "d.msg", "from the run's DS")
        control_eve = write(OTHER, do_jobs[OTHER] / "j2" / "request.json", "eve's own job")
        wait_until((net[DO].flwr_inbox(DO, APP) / "d.msg").is_file, "the DS's message")
        wait_until((do_jobs[DO] / "j2" / "request.json").is_file, "eve's own job")
        time.sleep(SYNC_ROUNDS)
        assert (do_jobs[DO] / "j1" / "request.json").read_text() == "signed by ds"
        assert on_server(request, DS).read_text() == "signed by ds"
        for path, writer in zip(forbidden, (DS, DS, OTHER, OTHER), strict=True):
            if path.name != "request.json":
                assert not on_server(path, writer).exists(), f"{path} reached the server"
                at_owner = net[DO].datasites_dir / path.relative_to(net[writer].datasites_dir)
                assert not at_owner.exists(), f"{path} reached the data owner"
            rejected = path.with_suffix(".syftrejected" + path.suffix)
            assert rejected.exists(), f"{writer}'s client did not mark {path.name} rejected"
        assert control_ds.exists() and control_eve.exists()

        # shared results: only the DS they were shared with receives them
        share_job_results(net[DO], DO, "j1", DS)
        results = write(DO, do_jobs[DO] / "j1" / "results" / "out.txt", "for ds only")
        wait_until((do_jobs[DS] / "j1" / "results" / "out.txt").is_file, "results at the DS")
        time.sleep(SYNC_ROUNDS)
        assert on_server(results, DO).is_file()
        assert not (do_jobs[OTHER] / "j1" / "results").exists(), "results reached another guest"
        assert not (net[OTHER].flwr_inbox(DO, APP) / "d.msg").exists(), "eve read the run"

        # the private folder never leaves the machine
        secret = write(DO, net[DO].private_dir(DO) / "datasets" / "s.csv", "private-row-42")
        time.sleep(SYNC_ROUNDS)
        assert secret.is_file()
        stored = [p for p in server.rglob("*") if p.is_file()]
        assert stored and not any(b"private-row-42" in p.read_bytes() for p in stored)
