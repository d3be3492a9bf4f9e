"""What a sandboxed job cannot reach: the owner's keys, other datasets, the owner's
environment, the network. Real bubblewrap, real jobs through the data owner's runner."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from syft_flwr.network.layout import Network
from tests.rds.rds_helpers import DO, approved
from tests.sandbox.conftest import needs_bwrap
from tests.sandbox.helpers import PROBE, events, probe_result

pytestmark = needs_bwrap

SECRET = "owner-secret-7f3a"


def test_a_job_cannot_read_keys_other_data_or_the_owners_environment(
    net, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OWNER_TOKEN", SECRET)  # in the runner's (the owner's) environment
    other = tmp_path / "other-dataset"
    other.mkdir()
    (other / "secret.csv").write_text("Glucose\n999\n")
    net.admin.dataset.create(name="other", path=other, mock_path=net.mock_dir, summary="x")
    network: Network = net.do.network
    keys = network.private_keys_dir(DO)
    copied_other = network.private_dataset_dir(DO, "other")
    targets = [
        keys / "ed25519.pem",
        keys / "x25519.pem",
        network.identity_path(DO),
        network.audit_log_path(DO),
        other / "secret.csv",
        *sorted(p for p in copied_other.rglob("*") if p.is_file()),
        Path(f"/proc/{os.getpid()}/environ"),  # the runner: the owner's process
        Path("/proc/1/environ"),
        Path("/proc/2/environ"),
    ]
    job = approved(net, tmp_path, PROBE, name="probe")
    handle = net.admin.run_private(job, env={"PROBE_PATHS": ":".join(map(str, targets))})
    assert handle.status == "completed", handle.stderr_path.read_text()
    result = probe_result(handle)
    for path in targets[:-2]:
        assert not result[str(path)].startswith("read"), f"the job read {path}"
    for path in targets[-2:]:  # the sandbox's own processes: nothing of the owner's in them
        assert SECRET not in result[str(path)] and "SYFTBOX" not in result[str(path)]
    assert SECRET not in str(result["env"]) and "OWNER_TOKEN" not in result["env"]
    assert "SYFTBOX_CLIENT_CONFIG_PATH" not in result["env"]
    assert os.getpid() not in result["pids"] and max(result["pids"]) < 100  # its own PIDs
    assert result["rows"] == 4  # its own private data, all of it
    start = events(net.admin, "run_start")[-1]
    assert start["sandbox"]["memory_bytes"] > 0


def test_a_job_sees_the_same_paths_and_a_clean_environment(net, tmp_path: Path) -> None:
    main = (
        "import json, os, sys\n"
        "info = dict(env=dict(os.environ), cwd=os.getcwd(), argv=sys.argv, py=sys.executable)\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'env.json'), 'w').write(json.dumps(info))\n"
    )
    job = approved(net, tmp_path, main)
    handle = net.admin.run_private(job, env={"EXTRA": "yes"})
    info = __import__("json").loads((handle.output_dir / "env.json").read_text())
    env = info["env"]
    assert env["EXTRA"] == "yes" and env["OUTPUT_DIR"] == str(handle.output_dir)
    assert env["DATA_DIR"] == str(net.admin.store.load(job.uid).runs[-1].data_dir)
    assert env["HOME"] == env["TMPDIR"] and Path(env["HOME"]).name == "scratch"
    assert info["cwd"] == str(net.admin.store.run_dir(job.uid, 1) / "code")
    assert info["argv"] == ["main.py"]
    assert Path(info["py"]).resolve() == Path(__import__("sys").executable).resolve()


def test_a_job_cannot_open_a_socket_to_the_owners_host(net, tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    main = (
        "import json, os, socket\n"
        "out = {}\n"
        "for name, addr in (('local', ('127.0.0.1', int(os.environ['PORT']))),\n"
        "                   ('internet', ('1.1.1.1', 53))):\n"
        "    try:\n"
        "        socket.create_connection(addr, timeout=2).close()\n"
        "        out[name] = 'connected'\n"
        "    except OSError as exc:\n"
        "        out[name] = type(exc).__name__\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'probe.json'), 'w').write(json.dumps(out))\n"
    )
    try:
        job = approved(net, tmp_path, main, name="net")
        handle = net.admin.run_private(job, env={"PORT": str(port)})
        result = probe_result(handle)
    finally:
        server.close()
    assert result["local"] != "connected" and result["internet"] != "connected", result
