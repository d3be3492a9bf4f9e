"""Never follow, never block, never read unbounded: links, FIFOs, folders and devices put where
a shared file belongs are refused (and set aside without being followed), and the legitimate
work next to them goes on exactly."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syft_flwr.crypto import PublicKeysInvalidError, public_keys
from syft_flwr.monitor import read_participant
from syft_flwr.network.safe_read import UnsafeFileError
from tests.faults.helpers import wait_for
from tests.rds.rds_helpers import DATASET, DO, MOCK_CSV, PRIVATE_CSV, approved, submit
from tests.transport.helpers import (
    AGGREGATOR,
    APP,
    COUNTS,
    DELTAS,
    datasite,
    federation,
    query_message,
)

DO1, DO2 = datasite(1), datasite(2)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- datasets: publishing and running on mock data ----------------------------------------------
def test_a_symlink_in_a_mock_folder_is_refused_when_publishing(net, tmp_path: Path) -> None:
    mock = tmp_path / "mock-with-link"
    mock.mkdir()
    (mock / "diabetes.csv").write_text(MOCK_CSV)
    (mock / "more.csv").symlink_to(net.private_dir / "diabetes.csv")  # private rows
    with pytest.raises(UnsafeFileError, match="more.csv.*symlink"):
        net.admin.dataset.create(name="leaky", path=net.private_dir, mock_path=mock)
    assert not net.do.network.dataset_dir(DO, "leaky").exists()
    public = net.do.network.public_dir(DO)
    assert not any(
        PRIVATE_CSV.splitlines()[1] in p.read_text(errors="replace")
        for p in public.rglob("*")
        if p.is_file()
    )
    # a mock folder that is itself a link is refused too
    link = tmp_path / "mock-link"
    link.symlink_to(net.private_dir, target_is_directory=True)
    with pytest.raises(UnsafeFileError, match="symlink"):
        net.admin.dataset.create(name="leaky", path=net.private_dir, mock_path=link)
    # the plain mock folder publishes exactly its files
    (mock / "more.csv").unlink()
    ds = net.admin.dataset.create(name="plain", path=net.private_dir, mock_path=mock)
    assert ds.mock_files == ["diabetes.csv"]
    assert (ds.get_mock_path() / "diabetes.csv").read_text() == MOCK_CSV


def test_a_symlink_planted_in_a_published_mock_folder_is_refused_on_a_mock_run(
    net, tmp_path: Path
) -> None:
    job = approved(net, tmp_path)
    mock = net.admin.dataset.get(name=DATASET).get_mock_path()
    (mock / "leak.csv").symlink_to(net.admin.dataset.get(name=DATASET).get_private_path())
    with pytest.raises(PermissionError, match="refusing to run.*mock data.*symlink"):
        net.admin.run_mock(job)
    assert net.admin.store.load(job.uid).runs == []
    assert net.admin.audit_log()[-1]["event"] == "refusal"
    (mock / "leak.csv").unlink()
    handle = net.admin.run_mock(job)
    assert handle.stdout_path.read_text() == "counted 1 rows\n"  # exactly the mock rows


# -- the jobs inbox replaced by a symlink into the private area ---------------------------------
def test_a_jobs_inbox_replaced_by_a_symlink_into_the_private_area_moves_nothing(
    net, tmp_path: Path
) -> None:
    network = net.do.network
    private = network.private_dir(DO)
    job = submit(net, tmp_path)
    assert net.admin.job.get(uid=job.uid).status == "pending_code_review"
    before = {
        p.relative_to(private).as_posix(): digest(p)
        for p in private.rglob("*")
        if p.is_file() and "trust" not in p.parts and not p.name.startswith(".")
    }
    inbox = network.jobs_dir(DO)
    moved_inbox = inbox.with_name("jobs-moved-away")
    inbox.rename(moved_inbox)
    inbox.symlink_to(private, target_is_directory=True)  # names like keys, rds, datasets
    fresh = net.do.init_session(host=DO)  # a new session of the owner, as after a restart
    assert [j.uid for j in fresh.job.get_all()] == [job.uid]  # its own record, nothing new
    assert fresh.job.refused() == []
    for name in ("identity.json", "keys", "datasets", "rds"):
        with pytest.raises(Exception, match="no job|not allowed|refused"):
            fresh.job.get(uid=name)
    after = {
        p.relative_to(private).as_posix(): digest(p)
        for p in private.rglob("*")
        if p.is_file() and "trust" not in p.parts and not p.name.startswith(".")
    }
    # nothing of the private area moved, nor was anything quarantined
    assert {k: v for k, v in after.items() if k in before} == before
    assert not network.quarantine_dir(DO).exists() or not list(network.quarantine_dir(DO).iterdir())
    assert network.identity_path(DO).exists() and network.audit_log_path(DO).exists()
    # the owner writes nothing through the link either
    net.admin.job.reject(job, reason="no")
    assert not (private / job.uid).exists()
    # put back: everything works again
    inbox.unlink()
    moved_inbox.rename(inbox)
    assert net.admin.job.get(uid=job.uid).status == "rejected"
    assert net.guest.job.get(uid=job.uid).status == "rejected"


# -- message inboxes: a FIFO, a folder or a symlink in a file's place ---------------------------
def plant_odd_entries(inbox: Path, target: Path) -> dict[str, str]:
    inbox.mkdir(parents=True, exist_ok=True)
    os.mkfifo(inbox / "fifo.msg")
    (inbox / "folder.msg").mkdir()
    (inbox / "folder.msg" / "inside").write_text("x")
    (inbox / "link.msg").symlink_to(target)
    return {"fifo.msg": "not-a-file", "folder.msg": "not-a-file", "link.msg": "not-a-file"}


def test_a_fifo_folder_or_symlink_in_a_datasite_inbox_is_set_aside_and_the_node_serves(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[]) as fed:
        network = fed.network
        target = network.identity_path(DO1)
        expected = plant_odd_entries(network.flwr_inbox(DO1, APP), target)
        fed.start(DO1)
        # a FIFO renamed in while the node runs (named by the watcher, never opened blocking)
        os.mkfifo(tmp_path / "late.msg")
        os.rename(tmp_path / "late.msg", network.flwr_inbox(DO1, APP) / "late.msg")
        expected["late.msg"] = "not-a-file"
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, DO1)]))
        assert len(replies) == 1 and not replies[0].has_error()
        assert replies[0].content["stats"]["sum"] == pytest.approx(3.0)
        for _ in range(200):
            if not list(network.flwr_inbox(DO1, APP).iterdir()):
                break
            os.sched_yield()
        result = fed.stop(DO1)
    got = {Path(q.path).name.split("-", 1)[1]: q.kind for q in result.quarantined}
    assert got == expected
    quarantined = {Path(q.path).name.split("-", 1)[1]: Path(q.path) for q in result.quarantined}
    assert quarantined["link.msg"].is_symlink()  # the link moved, not what it points to
    assert target.exists() and target.read_text().startswith("{")
    assert result.answered == 1


def test_a_fifo_folder_or_symlink_in_the_aggregator_inbox_does_not_make_the_grid_raise(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, DELTAS, COUNTS) as fed:
        grid = fed.grid
        target = fed.network.identity_path(AGGREGATOR)
        expected = plant_odd_entries(grid.inbox, target)
        replies = list(grid.send_and_receive([query_message(grid, DO1)]))
        assert len(replies) == 1 and replies[0].content["stats"]["sum"] == pytest.approx(3.0)
        assert list(grid.pull_messages(["0" * 32])) == []  # a full scan: nothing raises
    got = {Path(q.path).name.split("-", 1)[1]: q.kind for q in grid.report.quarantined}
    assert got == expected
    assert target.exists()


def test_a_message_inbox_replaced_by_a_symlink_moves_nothing_out_of_it(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS, COUNTS, start=[]) as fed:
        network = fed.network
        inbox = network.flwr_inbox(DO1, APP)
        private = network.private_dir(DO1)
        inbox.parent.mkdir(parents=True, exist_ok=True)
        inbox.symlink_to(private, target_is_directory=True)
        identity = network.identity_path(DO1).read_bytes()
        fed.start(DO1)
        fed.grid.push_messages([query_message(fed.grid, DO1)])  # lands in the private area
        wait_for(lambda: fed.nodes[DO1].result.quarantined, "the node to refuse what it found")
        result = fed.stop(DO1)
    # everything the node found there was refused, and nothing was moved out
    assert result.quarantined and not any(q.set_aside for q in result.quarantined)
    assert network.identity_path(DO1).read_bytes() == identity
    assert network.private_keys_dir(DO1).is_dir() and (private / "flwr").is_dir()


# -- public files: a FIFO or /dev/zero where a heartbeat or keys belong -------------------------
def status_command(root: Path, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syft_flwr.cli", "status", "--root", str(root), "--key", key],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_in_public_neither_hangs_status_nor_exhausts_memory(
    net, kind: str
) -> None:
    network = net.do.network
    ds_public = network.public_dir(net.ds.client.email)
    for path in (ds_public / "status.json", ds_public / "keys.json"):
        path.unlink(missing_ok=True)
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
    proc = status_command(network.root.parent, network.root.name)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if "@" in line}
    assert "online" in lines[DO].split()  # the owner's session beats, signed: shown exactly
    assert "no heartbeat" in lines[net.ds.client.email]
    participant = read_participant(network, net.ds.client.email)
    assert not participant.online and "unreadable" in participant.problem
    with pytest.raises(PublicKeysInvalidError, match="unusable"):
        public_keys(network, net.ds.client.email)


def test_dataset_metadata_pointing_at_dev_zero_is_skipped(net) -> None:
    bad = net.do.network.dataset_dir(DO, "zero")
    bad.mkdir()
    (bad / "metadata.json").symlink_to("/dev/zero")
    assert [d.name for d in net.guest.dataset.get_all()] == [DATASET]
    with pytest.raises(UnsafeFileError, match="symlink"):
        net.guest.dataset.get(name="zero")
