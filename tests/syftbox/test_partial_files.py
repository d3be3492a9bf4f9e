"""Over a sync, a message file that is not complete yet waits instead of being refused."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, Message, RecordDict

from syft_flwr.crypto import create_party
from syft_flwr.network import Network
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.endpoint import Endpoint, Received
from syft_flwr.transport.ids import node_id_for
from syft_flwr.transport.settings import INCOMPLETE_GRACE_ENV

DS, DO, APP = "ds@openmined.org", "do1@openmined.org", "app"


def _network(root: Path, *, synced: bool) -> Network:
    network = Network(root)
    for email in (DS, DO):
        create_party(network, email)
    if synced:  # what a SyftBox client writes on its first start
        (network.datasites_dir / "_.syftignore").write_text("/apps\n")
    return network


def _file(network: Network) -> tuple[Path, bytes]:
    flwr_compat.ensure_task_identity(1)
    msg = Message(RecordDict({"w": ArrayRecord([np.arange(5000.0)])}), node_id_for(DO), "train")
    flwr_compat.set_message_id(msg, "3" * 32)
    sender = Endpoint(network, DS, APP)
    data = sender.encode(msg, DO).to_bytes()
    return network.flwr_inbox(DO, APP) / f"{'3' * 32}.msg", data


def _receive(endpoint: Endpoint, path: Path) -> Received | str | None:
    entries = [e for e in endpoint.files(scan=True) if e.name == path.name]
    assert entries, f"{path.name} is not listed"
    return endpoint.receive(entries[0], senders=(DS,), screen=lambda env, f: None)


@pytest.mark.parametrize("cut", [10, 200, -100], ids=["prefix", "header", "body"])
def test_a_partly_synced_file_waits_then_is_read_whole(tmp_path: Path, cut: int) -> None:
    network = _network(tmp_path, synced=True)
    path, data = _file(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:cut])
    with Endpoint(network, DO, APP) as endpoint:
        assert endpoint.incomplete_grace == 30.0
        assert _receive(endpoint, path) is None
        assert path.exists(), "an incomplete file must stay where the sync is writing it"
        assert not endpoint.quarantine_dir.exists() or not any(endpoint.quarantine_dir.iterdir())
        assert endpoint.has_arrivals() is False  # looked at again only after a short delay
        path.write_bytes(data)  # the sync finishes the file
        received = _receive(endpoint, path)
        assert isinstance(received, Received)
        np.testing.assert_array_equal(
            received.message.content["w"].to_numpy_ndarrays()[0], np.arange(5000.0)
        )


def test_a_file_still_incomplete_after_the_grace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INCOMPLETE_GRACE_ENV, "0.3")
    network = _network(tmp_path, synced=True)
    path, data = _file(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-1])
    with Endpoint(network, DO, APP) as endpoint:
        assert _receive(endpoint, path) is None and path.exists()
        woke = time.monotonic()
        assert endpoint.wait(5.0) is True  # woken to look again, not after 5 s
        assert time.monotonic() - woke < 2.0
        time.sleep(0.3)
        assert _receive(endpoint, path) is None
        assert not path.exists()
        (refused,) = [p for p in endpoint.quarantine_dir.iterdir() if p.name.endswith(".msg")]
        reason = Path(os.fspath(refused) + ".reason.txt").read_text()
        assert "truncated" in reason and "sync grace" in reason


def test_a_file_deleted_by_the_sync_while_waiting_is_forgotten(tmp_path: Path) -> None:
    network = _network(tmp_path, synced=True)
    path, data = _file(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:50])
    with Endpoint(network, DO, APP) as endpoint:
        assert _receive(endpoint, path) is None
        endpoint.files()  # drain the watcher
        path.unlink()
        time.sleep(0.6)
        (due,) = endpoint.files()  # due for another look
        assert due.name == path.name
        assert endpoint.receive(due, senders=(DS,), screen=lambda env, f: None) is None
        time.sleep(0.6)
        assert endpoint.files() == []
        assert not endpoint.security_log.exists()


def test_on_one_local_folder_a_truncated_file_is_refused_at_once(tmp_path: Path) -> None:
    network = _network(tmp_path, synced=False)
    path, data = _file(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:-1])
    with Endpoint(network, DO, APP) as endpoint:
        assert endpoint.incomplete_grace == 0.0
        assert _receive(endpoint, path) is None
        assert not path.exists() and endpoint.security_log.exists()


def test_a_message_over_what_syftbox_syncs_is_refused_when_sent(tmp_path: Path) -> None:
    from syft_flwr.transport.errors import SyncFileTooLargeError

    network = _network(tmp_path, synced=True)
    flwr_compat.ensure_task_identity(1)
    big = Message(RecordDict({"w": ArrayRecord([np.zeros(11 * 2**17)])}), node_id_for(DO), "train")
    flwr_compat.set_message_id(big, "4" * 32)
    sender = Endpoint(network, DS, APP)
    assert sender.sync_max_file == 10 * 2**20
    with pytest.raises(SyncFileTooLargeError, match="over the 10 MiB a SyftBox client syncs"):
        sender.encode(big, DO)
    small = Message(RecordDict({"w": ArrayRecord([np.zeros(10)])}), node_id_for(DO), "train")
    flwr_compat.set_message_id(small, "5" * 32)
    assert sender.encode(small, DO).size < 2**20
    assert Endpoint(_network(tmp_path / "local", synced=False), DS, APP).sync_max_file is None
