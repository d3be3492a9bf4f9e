"""A data owner's admin session publishes the owner's heartbeat; a guest session publishes none."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from syft_flwr.crypto import next_sequence, sign_document
from syft_flwr.monitor import list_participants, read_participant
from syft_flwr.monitor.heartbeat import running_heartbeats
from syft_flwr.monitor.participants import HEARTBEAT_DOMAIN
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from syft_flwr.rds import setup_rds_server
from tests.faults.helpers import wait_for
from tests.rds.rds_helpers import DO, DS, approved

# A job that publishes its own datasite heartbeat, as the datasite runtime does, until the
# test drops a "stop" file in its output folder.
PUBLISHING_JOB = """\
import os
import time
from pathlib import Path

from syft_flwr.config import Identity
from syft_flwr.monitor import Heartbeat

me = Identity.load()
stop = Path(os.environ["OUTPUT_DIR"]) / "stop"
with Heartbeat(me.network, me.email, "datasite", interval=0.2) as hb:
    hb.update(job=os.environ["SYFT_FLWR_JOB_ID"], app="probe", round=1)
    while not stop.exists():
        time.sleep(0.05)
"""


def _heartbeat_threads() -> set[int]:
    """The heartbeats beating now (one thread of the process beats them all)."""
    return {id(hb) for hb in running_heartbeats()}


def _status(net) -> dict:
    return json.loads(net.admin.network.status_path(DO).read_text())


def test_an_admin_session_shows_its_owner_online_until_closed(net) -> None:
    people = {p.email: p for p in list_participants(net.admin.network)}
    owner = people[DO]
    assert owner.online and owner.role == "data owner" and owner.pid == os.getpid()
    assert owner.running == {"job": None, "app": None, "round": None}
    assert people[DS].state == "no heartbeat"  # its guest session publishes nothing

    again = setup_rds_server(email=DO, root_dir=net.root).init_session(host=DO)
    assert again.heartbeat is net.admin.heartbeat  # one per owner and network in a process
    again.close()
    assert read_participant(net.admin.network, DO).online  # net.admin still holds it
    net.admin.close()
    net.admin.close()  # harmless
    owner = read_participant(net.admin.network, DO)
    assert not owner.online and owner.state == "offline"
    # the session still works without its heartbeat
    assert [d.name for d in net.admin.dataset.get_all()]


def test_a_guest_session_publishes_nothing_for_its_host(tmp_path: Path) -> None:
    root = tmp_path / "net"
    owner = setup_rds_server(email=DO, root_dir=root)
    guest = setup_rds_server(email=DS, root_dir=root).init_session(host=DO)
    assert guest.heartbeat is None
    assert not owner.network.status_path(DO).exists()
    assert {p.email: p.state for p in list_participants(owner.network)} == {
        DO: "no heartbeat",
        DS: "no heartbeat",
    }
    with owner.init_session(host=DO) as admin:
        assert read_participant(admin.network, DO).online
    assert not read_participant(owner.network, DO).online  # the with block closed it


def test_many_sessions_leave_no_heartbeat_behind(tmp_path: Path) -> None:
    before = _heartbeat_threads()
    sessions, networks = [], []
    for i in range(12):
        server = setup_rds_server(email=DO, root_dir=tmp_path / f"net{i}")
        networks.append(server.network)
        sessions += [server.init_session(host=DO) for _ in range(3)]
    started = _heartbeat_threads() - before
    assert len(started) == 12  # one per network, shared by its 3 sessions
    assert [t.name for t in threading.enumerate()].count("syft-flwr-heartbeats") == 1
    for session in sessions[:6]:
        session.close()
    assert len(_heartbeat_threads() - before) == 10  # networks 0 and 1: closed at once
    del sessions, session  # the others are dropped without close(): collected, they retire
    gc.collect()
    wait_for(lambda: not (_heartbeat_threads() & started), "the dropped sessions' heartbeats")
    assert not any(read_participant(network, DO).online for network in networks)


def test_a_fresh_status_of_another_process_is_left_alone(net) -> None:
    heartbeat = net.admin.heartbeat
    path = net.admin.network.status_path(DO)
    other = {**_status(net), "pid": os.getpid() + 1, "role": "datasite", "online": True}
    other.pop("signature")

    def signed(status: dict) -> dict:  # what another process of the owner writes
        status = {**status, "seq": next_sequence(net.admin.network, DO)}
        return sign_document(net.admin.client.identity, HEARTBEAT_DOMAIN, status)

    atomic_write_json(path, signed({**other, "updated_at_epoch": time.time()}))
    heartbeat.beat()
    assert _status(net)["pid"] == os.getpid() + 1  # not replaced
    atomic_write_json(path, signed({**other, "updated_at_epoch": time.time() - 60}))  # crashed
    heartbeat.beat()
    assert _status(net)["pid"] == os.getpid() and _status(net)["role"] == "data owner"
    # an unsigned status (a forgery) does not make the session pause
    atomic_write_json(path, {**other, "updated_at_epoch": time.time(), "seq": 2**62})
    heartbeat.beat()
    assert _status(net)["pid"] == os.getpid() and _status(net)["role"] == "data owner"


def test_the_owner_pauses_while_its_job_publishes_and_resumes_after(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, main=PUBLISHING_JOB, name="publishing")
    # a sandboxed script cannot reach the datasite (a Flower job's trusted node beats for it):
    # this script plays that node, so it runs unsandboxed
    handle = net.admin.run_private(job, blocking=False, timeout=60, sandbox=False)
    try:
        # the job's first beat comes before it names what it runs: wait for the one that does
        wait_for(
            lambda: (
                _status(net).get("pid") == handle.pid and _status(net)["running"]["job"] == job.uid
            ),
            "the job's own heartbeat",
        )
        # for more than two of the session's beats, status.json stays the job's
        deadline = time.monotonic() + 4.5
        while time.monotonic() < deadline:
            status = _status(net)
            assert status["pid"] == handle.pid and status["role"] == "datasite", status
            assert status["running"] == {"job": job.uid, "app": "probe", "round": 1}
            time.sleep(0.1)
    finally:
        (handle.output_dir / "stop").write_text("")
        assert handle.wait(timeout=60) == 0, handle.stderr_path.read_text()

    def resumed() -> bool:
        status = _status(net)
        return status["pid"] == os.getpid() and status["online"] is True

    wait_for(resumed, "the owner's heartbeat to resume", timeout=10)
    assert _status(net)["role"] == "data owner"
    assert _status(net)["running"]["job"] is None  # the run is over


def test_a_blocking_run_is_named_while_it_runs(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, main="import time\ntime.sleep(1.5)\n", name="sleepy")
    seen: list[object] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(_status(net)["running"]["job"])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert net.admin.run_private(job, blocking=True, timeout=60).returncode == 0
    finally:
        stop.set()
        watcher.join(10)
    assert job.uid in seen
    assert _status(net)["running"]["job"] is None and _status(net)["online"] is True


def test_importing_the_rds_stays_cheap(tmp_path: Path) -> None:
    """No monitor and no psutil at import; an admin session adds no prometheus or HTTP server."""
    code = (
        "import sys\n"
        "from syft_flwr.rds import setup_rds_server\n"
        "print(sorted(m for m in sys.modules if m.startswith(('syft_flwr.monitor', 'psutil'))))\n"
        "setup_rds_server('do1@openmined.org', root_dir=sys.argv[1]).init_session("
        "host='do1@openmined.org')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'http.server'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines() == ["[]", "[]"]
    # the process ended with the session open: its heartbeat said offline at exit
    assert read_participant(Network.at(tmp_path), DO).state == "offline"
