"""Real OS processes: the aggregator's `main.py --active` and two data owners' approved jobs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import syft_flwr
from syft_flwr.rds import setup_rds_server
from tests.support import AGGREGATOR, DATASITES

KEY = "net"


def _publish(root: Path, email: str, data: Path):
    admin = setup_rds_server(email=email, root_dir=root, key=KEY).init_session(host=email)
    mock = data.parent / f"{data.name}-mock"
    mock.mkdir()
    (mock / "values.txt").write_text("0\n")
    admin.dataset.create(name="numbers", path=data, mock_path=mock, summary="numbers")
    return admin


def _aggregate(project: Path, config_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYFTBOX_CLIENT_CONFIG_PATH=str(config_path), SYFT_FLWR_MSG_TIMEOUT="60")
    return subprocess.run(
        [sys.executable, "main.py", "--active", *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_aggregator_and_two_jobs_agree_with_direct_computation(tmp_path, tiny_app, tiny_data):
    root = tmp_path / "root"
    admins = {
        email: _publish(root, email, data) for email, data in zip(DATASITES, tiny_data, strict=True)
    }
    ds = setup_rds_server(email=AGGREGATOR, root_dir=root, key=KEY)
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)

    handles = {}
    for email, admin in admins.items():
        job = ds.init_session(host=email).job.submit(
            name="tiny", user_code_path=tiny_app, dataset_name="numbers", entrypoint="main.py"
        )
        admin.job.approve(admin.job.get(uid=job.uid))
        handles[email] = (job.uid, admin.run_private(admin.job.get(uid=job.uid), blocking=False))

    proc = _aggregate(tiny_app, ds.client.config_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((tiny_app / "result.json").read_text())
    values = np.concatenate([np.loadtxt(d / "values.txt", ndmin=1) for d in tiny_data])
    assert got["count"] == len(values) and got["datasites"] == 2
    assert got["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert got["variance"] == pytest.approx(values.var(), rel=1e-12)

    for email, (uid, handle) in handles.items():
        handle.wait(timeout=60)
        assert admins[email].job.get(uid=uid).status == "completed"


def test_a_party_not_in_the_project_gets_a_clear_error(tmp_path, tiny_app):
    root = tmp_path / "root"
    stranger = setup_rds_server(email="eve@evil.org", root_dir=root, key=KEY)
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    proc = _aggregate(tiny_app, stranger.client.config_path)
    assert proc.returncode == 2
    assert "eve@evil.org is neither the aggregator" in proc.stderr


def test_aggregator_reports_a_datasite_that_never_answers(tmp_path, tiny_app, tiny_data):
    root = tmp_path / "root"
    admin = _publish(root, DATASITES[0], tiny_data[0])
    ds = setup_rds_server(email=AGGREGATOR, root_dir=root, key=KEY)
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    job = ds.init_session(host=DATASITES[0]).job.submit(
        name="tiny", user_code_path=tiny_app, dataset_name="numbers", entrypoint="main.py"
    )
    admin.job.approve(admin.job.get(uid=job.uid))
    handle = admin.run_private(admin.job.get(uid=job.uid), blocking=False)

    proc = _aggregate(tiny_app, ds.client.config_path, "--timeout", "3")
    handle.wait(timeout=60)
    assert proc.returncode == 3, proc.stderr  # finished, but not plain success
    assert "do2@openmined.org" in proc.stderr and "did not answer" in proc.stderr
    assert json.loads((tiny_app / "result.json").read_text())["datasites"] == 1


def test_a_node_result_reads_as_a_sentence() -> None:
    from syft_flwr.runtime import describe_node_result
    from syft_flwr.transport import AppError, NodeResult
    from syft_flwr.transport.report import QuarantinedFile

    clean = NodeResult("stop-message", answered=1)
    assert describe_node_result(clean) == (
        "answered 1 message and stopped when the aggregator said the run was over"
    )
    troubled = NodeResult(
        "idle-timeout",
        answered=3,
        app_errors=[AppError("m1", "ValueError", "boom")],
        quarantined=[QuarantinedFile("/inbox/x", "bad MAC", "bad-mac")],
        undelivered=["r1"],
    )
    assert describe_node_result(troubled) == (
        "answered 3 messages and stopped at the idle timeout, before the aggregator said the "
        "run was over; the ClientApp raised ValueError: boom; 1 reply file(s) could not be "
        "written; refused 1 file(s) (1 bad-mac)"
    )
    assert "NodeResult(" not in describe_node_result(troubled)


def _main(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=project,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_main_help_explains_every_flag(tiny_app) -> None:
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    proc = _main(tiny_app, "--help")
    assert proc.returncode == 0, proc.stderr
    flags = [
        "--active",
        "--config",
        "--resume",
        "--run-config",
        "--timeout",
        "--metrics-port",
        "--wait-online",
        "--data-dir",
        "--node-config",
        "--idle-timeout",
    ]
    for flag in flags:
        assert flag in proc.stdout, f"{flag} missing from --help"
    text = " ".join(proc.stdout.split())  # argparse wraps lines
    for env in ("SYFTBOX_CLIENT_CONFIG_PATH", "SYFT_FLWR_MSG_TIMEOUT", "SYFT_FLWR_IDLE_TIMEOUT"):
        assert env in text
    assert "aggregator" in text and "datasite" in text


@pytest.mark.parametrize("role", ["aggregator", "datasite"])
def test_an_app_that_does_not_import_is_one_error_line(tmp_path, tiny_app, tiny_data, role):
    root = tmp_path / "root"
    email = AGGREGATOR if role == "aggregator" else DATASITES[0]
    party = setup_rds_server(email=email, root_dir=root, key=KEY)
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    if role == "aggregator":
        (tiny_app / "tiny_app" / "server_app.py").write_text("def main(:\n")
        kind, ref, cause = "serverapp", "tiny_app.server_app:app", "SyntaxError: "
    else:
        (tiny_app / "tiny_app" / "client_app.py").write_text("import no_such_module_xyz\n")
        kind, ref, cause = "clientapp", "tiny_app.client_app:app", "ModuleNotFoundError: "
    proc = _main(
        tiny_app,
        "--active",
        SYFTBOX_CLIENT_CONFIG_PATH=str(party.client.config_path),
        DATA_DIR=str(tiny_data[0]),
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert f"could not load the {kind} {ref!r}" in errors[0] and cause in errors[0]
    assert "pyproject.toml" in errors[0]


def test_msg_timeout_from_the_environment_names_the_silent_datasites(tmp_path, tiny_app):
    root = tmp_path / "root"
    for email in DATASITES:  # their keys exist, but no datasite serves
        setup_rds_server(email=email, root_dir=root, key=KEY)
    ds = setup_rds_server(email=AGGREGATOR, root_dir=root, key=KEY)
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    proc = _main(
        tiny_app,
        "--active",
        SYFTBOX_CLIENT_CONFIG_PATH=str(ds.client.config_path),
        SYFT_FLWR_MSG_TIMEOUT="1",
    )
    assert proc.returncode == 1, proc.stderr  # the ServerApp gave up: nobody answered
    for email in DATASITES:
        assert f"datasite {email} failed: did not answer within 1 s" in proc.stderr


def test_a_missing_identity_file_says_how_to_get_one(tmp_path, tiny_app) -> None:
    from syft_flwr.config import Identity

    missing = tmp_path / "nowhere" / "identity.json"
    with pytest.raises(FileNotFoundError) as info:
        Identity.load(missing)
    message = str(info.value)
    assert f"identity file {missing} does not exist" in message
    assert "setup_rds_server(email=..., root_dir=..., key=...)" in message
    assert "SYFTBOX_CLIENT_CONFIG_PATH" in message and "--config" in message

    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    proc = _main(tiny_app, "--active", "--config", str(missing))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "setup_rds_server(" in proc.stderr
