"""Heartbeats and participants: status.json appears, refreshes, goes offline; staleness."""

from __future__ import annotations

import json
import time

import pytest

from syft_flwr.crypto import ensure_keys, next_sequence, sign_document
from syft_flwr.events import RoundStarted, RunFinished, RunStarted
from syft_flwr.monitor import Heartbeat, HeartbeatSubscriber, list_participants, read_participant
from syft_flwr.monitor.participants import HEARTBEAT_DOMAIN
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from tests.support import AGGREGATOR, DATASITES

DO1, DO2 = DATASITES


def _wait_for(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def test_heartbeat_appears_updates_and_goes_offline(network: Network):
    path = network.status_path(DO1)
    hb = Heartbeat(network, DO1, "datasite", interval=0.05)
    assert not path.exists()
    with hb:
        first = json.loads(path.read_text())  # written before __enter__ returns
        assert first["email"] == DO1 and first["role"] == "datasite" and first["online"] is True
        assert first["running"] == {"job": None, "app": None, "round": None}
        assert set(first["cpu_percent"]) == {"process", "machine"}
        assert first["memory"]["process_rss_bytes"] > 0
        assert 0 < first["memory"]["machine_percent"] <= 100
        assert first["updated_at"].endswith("+00:00")

        # it refreshes by itself ...
        _wait_for(
            lambda: json.loads(path.read_text())["updated_at_epoch"] > first["updated_at_epoch"]
        )
        # ... and an update shows up with the next write
        hb.update(job="j-7", app="fed-analytics", round=2)
        _wait_for(lambda: json.loads(path.read_text())["running"]["round"] == 2)
        assert json.loads(path.read_text())["running"] == {
            "job": "j-7",
            "app": "fed-analytics",
            "round": 2,
        }
        hb.update(round=3)  # only the keyword given changes
        _wait_for(
            lambda: (
                json.loads(path.read_text())["running"]
                == {"job": "j-7", "app": "fed-analytics", "round": 3}
            )
        )

        p = read_participant(network, DO1)
        assert p.online and p.state == "online" and p.role == "datasite"
        assert 0 <= p.heartbeat_age < 5
        assert p.running["round"] == 3 and p.pid is not None

    last = json.loads(path.read_text())
    assert last["online"] is False
    p = read_participant(network, DO1)
    assert not p.online and p.state == "offline" and p.heartbeat_age is not None
    # no temporary left (keys.json: the public keys that check the heartbeat's signature)
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json", "status.json"]


def test_old_heartbeat_counts_as_offline(network: Network):
    with Heartbeat(network, DO1, "datasite", interval=60) as hb:
        pass
    # a process that died without saying goodbye: online=true, but written long ago (signed
    # by the datasite, as its last beat was)
    status = hb.status(online=True)
    status.update(updated_at_epoch=time.time() - 100, seq=next_sequence(network, DO1))
    atomic_write_json(network.status_path(DO1), sign_document(hb, HEARTBEAT_DOMAIN, status))

    p = read_participant(network, DO1, offline_after=15)
    assert not p.online and p.state == "offline"
    assert 99 <= p.heartbeat_age < 130
    assert read_participant(
        network, DO1, offline_after=1000
    ).online  # fresh enough for a lax reader


def test_datasite_without_heartbeat_is_offline(network: Network):
    network.public_dir(DO2).mkdir(parents=True, exist_ok=True)
    (network.datasites_dir / "not-a-datasite").mkdir()  # skipped: not an email
    with Heartbeat(network, DO1, "datasite", interval=60):
        people = {p.email: p for p in list_participants(network)}
        assert set(people) == {DO1, DO2}
        assert people[DO1].online
        assert not people[DO2].online
        assert people[DO2].heartbeat_age is None and people[DO2].state == "no heartbeat"


def test_malformed_status_is_offline_with_a_reason(network: Network):
    network.public_dir(AGGREGATOR).mkdir(parents=True, exist_ok=True)
    network.status_path(AGGREGATOR).write_text("{not json")
    p = read_participant(network, AGGREGATOR)
    assert not p.online and p.heartbeat_age is None
    assert "malformed" in p.problem


def test_heartbeat_rejects_bad_input(network: Network):
    with pytest.raises(ValueError, match="not a valid datasite email"):
        Heartbeat(network, "../etc", "datasite")
    with pytest.raises(ValueError, match="interval"):
        Heartbeat(network, DO1, "datasite", interval=0)


def test_heartbeat_subscriber_follows_the_run(network: Network):
    ensure_keys(network, AGGREGATOR, durable=False)
    with Heartbeat(network, AGGREGATOR, "aggregator", interval=60) as hb:
        subscriber = HeartbeatSubscriber(hb, job="job-9")
        subscriber.on_event(RunStarted(3, "fed-analytics", (DO1,)))
        subscriber.on_event(RoundStarted(2, (DO1,)))
        # written at once, not at the next beat (the interval is a minute)
        assert read_participant(network, AGGREGATOR).running == {
            "job": "job-9",
            "app": "fed-analytics",
            "round": 2,
        }
        subscriber.on_event(RunFinished(True, {}))
        assert read_participant(network, AGGREGATOR).running == {
            "job": None,
            "app": None,
            "round": None,
        }
