"""Pinned keys and fresh state: a forged heartbeat shows no one online, an older signed status
or results folder put back is refused, and a swapped keys.json is refused (trust on first use)
until the reader accepts the rotation on purpose."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syft_flwr.crypto import key_fingerprints, public_keys, sign_document
from syft_flwr.crypto.freshness import forget_seen
from syft_flwr.monitor import Heartbeat, read_participant, wait_for_datasites
from syft_flwr.monitor.participants import HEARTBEAT_DOMAIN
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.rds import JobRefusedError, ResultsTamperedError, setup_rds_server
from tests.rds.rds_helpers import DO, DS, approved, submit
from tests.security.forge import forge_submission
from tests.security.test_attacks_transport import encode, instruction
from tests.transport.helpers import (
    AGGREGATOR,
    APP,
    COUNTS,
    DELTAS,
    datasite,
    federation,
    query_message,
)

EVE = "eve@evil.org"
DO1, DO2 = datasite(1), datasite(2)


# -- heartbeats -------------------------------------------------------------------------------
def test_a_forged_heartbeat_shows_no_datasite_online(net) -> None:
    network = net.do.network
    email = "do2@openmined.org"
    setup_rds_server(email=email, root_dir=net.root)  # a datasite with keys, not serving
    forged = {
        "version": 1,
        "email": email,
        "role": "datasite",
        "online": True,
        "updated_at_epoch": time.time() + 30 * 24 * 3600,  # "online for a month"
        "seq": 2**62,
    }
    atomic_write_json(network.status_path(email), forged)  # unsigned
    p = read_participant(network, email)
    assert not p.online and "refused" in p.problem and "not signed" in p.problem
    eve = setup_rds_server(email=EVE, root_dir=net.root).client.identity
    atomic_write_json(network.status_path(email), sign_document(eve, HEARTBEAT_DOMAIN, forged))
    p = read_participant(network, email)
    assert not p.online and "refused" in p.problem
    with pytest.raises(TimeoutError, match="still offline"):
        wait_for_datasites(network, [email], timeout=0.5, progress=None)
    # the datasite's own heartbeat is accepted at once
    with Heartbeat(network, email, "datasite", interval=60):
        wait_for_datasites(network, [email], timeout=5, progress=None)
        assert read_participant(network, email).online


def test_an_older_signed_heartbeat_put_back_is_refused(net) -> None:
    network = net.do.network
    email = "do2@openmined.org"
    setup_rds_server(email=email, root_dir=net.root)
    with Heartbeat(network, email, "datasite", interval=60) as hb:
        old = network.status_path(email).read_bytes()
        hb.update(round=2)
        assert read_participant(network, email).running["round"] == 2
        network.status_path(email).write_bytes(old)  # the older beat, replayed
        p = read_participant(network, email)
        assert not p.online and "older document" in p.problem
        hb.beat()
        assert read_participant(network, email).running["round"] == 2


# -- the owner's signed status and results ------------------------------------------------------
def test_an_older_signed_status_cannot_make_a_rejected_job_look_pending(
    net, tmp_path: Path
) -> None:
    job = submit(net, tmp_path)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    mirror = job.code_path.parent / "status.json"
    pending = mirror.read_bytes()  # signed by the owner, genuinely
    assert net.guest.job.get(uid=job.uid).status == "pending_code_review"
    net.admin.job.reject(job, reason="reads too much")
    assert net.guest.job.get(uid=job.uid).status == "rejected"
    mirror.write_bytes(pending)  # replayed
    assert net.guest.job.get(uid=job.uid).status == "unknown"
    assert "older document" in net.guest.job.get(uid=job.uid).reason
    # the guest's memory outlives its process: a new session refuses it too
    forget_seen()
    later = net.ds.init_session(host=DO)
    assert later.job.get(uid=job.uid).status == "unknown"
    # the owner puts its current status back
    assert net.admin.job.get(uid=job.uid).status == "rejected"
    assert later.job.get(uid=job.uid).status == "rejected"


def test_older_results_put_back_are_refused(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_mock(job)
    results = net.admin.job.share_results(job)
    old = tmp_path / "old-results"
    shutil.copytree(results, old)
    assert (net.guest.job.get_results(job) / "output" / "count.txt").read_text() == "1"
    net.admin.run_private(job)
    net.admin.job.share_results(job)
    assert (net.guest.job.get_results(job) / "output" / "count.txt").read_text() == "4"
    shutil.rmtree(results)
    shutil.copytree(old, results)  # the earlier results, signed by the owner, put back
    with pytest.raises(ResultsTamperedError, match="older document"):
        net.guest.job.get_results(job)
    net.admin.job.share_results(job)  # sharing again restores the exact current ones
    assert (net.guest.job.get_results(job) / "output" / "count.txt").read_text() == "4"


def test_unsequenced_status_and_results_are_refused(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_private(job)
    results = net.admin.job.share_results(job)
    manifest = json.loads((results / "manifest.json").read_text())
    manifest.pop("signature")
    manifest.pop("seq")
    identity = net.do.client.identity
    atomic_write_json(
        results / "manifest.json", sign_document(identity, "rds.job_results.v1", manifest)
    )
    with pytest.raises(ResultsTamperedError, match="no sequence number"):
        net.guest.job.get_results(job)


# -- pinned keys --------------------------------------------------------------------------------
def swap_keys(network, victim: str, attacker: str) -> bytes:
    """Replace ``victim``'s keys.json with ``attacker``'s keys under ``victim``'s name."""
    path = network.public_keys_path(victim)
    original = path.read_bytes()
    forged = json.loads(network.public_keys_path(attacker).read_text())
    forged["email"] = victim
    atomic_write_json(path, forged)
    return original


def test_a_swapped_keys_json_is_refused_until_the_rotation_is_accepted(net, tmp_path: Path) -> None:
    network = net.do.network
    first = submit(net, tmp_path)
    assert net.admin.job.get(uid=first.uid).status == "pending_code_review"  # DS pinned now
    eve = setup_rds_server(email=EVE, root_dir=net.root)
    original = swap_keys(network, DS, EVE)
    job_dir = forge_submission(net.admin.job.inbox, eve.client.identity)  # "from DS"
    with pytest.raises(JobRefusedError, match="key_changed.*syft-flwr keys accept"):
        net.admin.job.get(uid=job_dir.name)
    rows = {r["peer"]: r for r in key_fingerprints(network, DO)}
    assert rows[DS]["state"] == "CHANGED"
    # the guest still knows its own job (checked with its own key, not the swapped keys.json)
    assert [j.uid for j in net.guest.job.get_all()] == [first.uid]
    network.public_keys_path(DS).write_bytes(original)
    # the guest, who pinned the owner, refuses a status signed under swapped owner keys
    assert net.guest.job.get(uid=first.uid).status == "pending_code_review"
    owner_keys = swap_keys(network, DO, EVE)
    mirror = first.code_path.parent / "status.json"
    payload = json.loads(mirror.read_text())
    payload.pop("signature")
    payload.update(status="approved", seq=payload["seq"] + 1)
    atomic_write_json(mirror, sign_document(eve.client.identity, "rds.job_status.v1", payload))
    assert net.guest.job.get(uid=first.uid).status == "unknown"
    assert "changed since" in net.guest.job.get(uid=first.uid).reason
    network.public_keys_path(DO).write_bytes(owner_keys)
    # a rotation made on purpose: refused until the owner accepts it, then accepted
    setup_rds_server(email=DS, root_dir=net.root, reset=True)  # new keys
    guest = setup_rds_server(email=DS, root_dir=net.root).init_session(host=DO)
    rotated = guest.job.submit(
        name="after-rotation", user_code_path=first.code_path, dataset_name=first.dataset_name
    )
    with pytest.raises(JobRefusedError, match="key_changed"):
        net.admin.job.get(uid=rotated.uid)
    fingerprint = net.admin.accept_key(DS)
    assert net.admin.audit_log()[-1] == {
        **net.admin.audit_log()[-1],
        "event": "key_accepted",
        "peer": DS,
        "fingerprint": fingerprint,
    }
    again = guest.job.submit(
        name="after-accept", user_code_path=first.code_path, dataset_name=first.dataset_name
    )
    assert net.admin.job.get(uid=again.uid).status == "pending_code_review"


def test_a_swapped_aggregator_key_cannot_command_a_datasite(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[1]) as fed:
        network = fed.network
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))
        assert replies[0].content["stats"]["sum"] == pytest.approx(3.0)  # DO1 pinned now
        aggregator = AGGREGATOR
        original = swap_keys(network, aggregator, DO2)
        time.sleep(2.1)  # past the MessageKeys refresh: the node reads keys.json again
        forged = encode(
            network, instruction(fed, DO1), writer=DO2, sender=aggregator, recipient=DO1
        )
        network.flwr_inbox(DO1, APP).joinpath(forged.envelope.file_name).write_bytes(
            forged.to_bytes()
        )
        for _ in range(200):
            if fed.nodes[DO1].result.quarantined:
                break
            time.sleep(0.025)
        (refused,) = fed.nodes[DO1].result.quarantined
        assert refused.kind == "bad-mac" and "changed since" in refused.reason
        network.public_keys_path(aggregator).write_bytes(original)
        time.sleep(2.1)
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))
        assert replies[0].content["stats"]["sum"] == pytest.approx(3.0)  # the run goes on


def test_keys_show_and_accept_from_the_command_line(net, tmp_path: Path) -> None:
    network = net.do.network
    first = submit(net, tmp_path)
    assert net.admin.job.get(uid=first.uid).status == "pending_code_review"  # DS pinned
    setup_rds_server(email=DS, root_dir=net.root, reset=True)  # DS rotates its keys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        where = ["--root", str(network.root.parent), "--key", network.root.name]
        return subprocess.run(
            [sys.executable, "-m", "syft_flwr.cli", "keys", *args, "--as", DO, *where],
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = cli("show")
    assert shown.returncode == 0, shown.stderr
    line = next(row for row in shown.stdout.splitlines() if DS in row)
    assert "CHANGED" in line
    accepted = cli("accept", DS)
    assert accepted.returncode == 0, accepted.stderr
    published = public_keys(network, DS).long_fingerprint
    assert published in accepted.stdout
    assert next(r for r in key_fingerprints(network, DO) if r["peer"] == DS)["state"] == "ok"
    assert "CHANGED" not in cli("show").stdout
