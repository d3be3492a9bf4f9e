"""The job runner: real subprocesses, logs to files, timeouts, exit codes, mock vs private data."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.rds.rds_helpers import SCRIPTS, approved


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_job_printing_20_mb_completes(net, tmp_path: Path) -> None:
    main = (
        "import sys\n"
        "line = 'x' * 1023 + '\\n'\n"
        "for _ in range(20 * 1024):\n"
        "    sys.stdout.write(line)\n"
        "sys.stderr.write('e' * 2_000_000)\n"
    )
    job = approved(net, tmp_path, main)
    handle = net.admin.run_private(job, blocking=True, timeout=120)
    assert handle.returncode == 0 and handle.status == "completed"
    assert handle.stdout_path.stat().st_size == 20 * 1024 * 1024
    assert handle.stderr_path.stat().st_size == 2_000_000
    shown = net.admin.job.show_logs(job, max_chars=1000)
    assert "showing the last 1000 of" in shown and len(shown) < 5000


def test_timeout_kills_the_process_group(net, tmp_path: Path) -> None:
    main = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'child.pid'), 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n"
    )
    job = approved(net, tmp_path, main)
    # unsandboxed (the child's pid is the owner's); tests/sandbox covers a sandboxed timeout
    handle = net.admin.run_private(job, blocking=True, timeout=1.5, sandbox=False)
    assert handle.status == "failed" and handle.reason == "timeout"
    assert handle.returncode < 0  # killed by a signal
    record = net.admin.store.load(job.uid)
    assert record.status == "failed" and record.reason == "timeout"
    assert record.runs[-1].exit_code == handle.returncode
    child = int((handle.output_dir / "child.pid").read_text())
    assert _wait_gone(child), "the job's child outlived the timeout"
    assert net.guest.job.get(uid=job.uid).status == "failed"
    assert net.guest.job.get(uid=job.uid).reason == "timeout"


def test_failing_job_is_failed_with_its_exit_code(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)\n")
    handle = net.admin.run_private(job)
    assert handle.returncode == 3 and handle.status == "failed"
    record = net.admin.store.load(job.uid)
    assert record.status == "failed" and record.reason == "exit code 3"
    assert record.runs[0].exit_code == 3 and record.runs[0].duration_s >= 0
    assert "oops" in net.admin.job.show_logs(job)
    end = net.admin.audit_log()[-1]
    assert end["event"] == "run_end" and end["exit_code"] == 3 and end["status"] == "failed"
    # A failed run's logs may still be shared, deliberately.
    results = net.admin.job.share_results(job)
    assert "oops" in (results / "logs" / "stderr.log").read_text()


def test_run_mock_uses_the_mock_dir_and_private_the_private(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    mock = net.admin.run_mock(job)
    assert (mock.output_dir / "count.txt").read_text() == "1"
    data_dir = Path((mock.output_dir / "data_dir.txt").read_text())
    assert data_dir == net.guest.dataset.get(name=job.dataset_name).get_mock_path()
    private = net.admin.run_private(job)
    assert (private.output_dir / "count.txt").read_text() == "4"
    private_dir = Path((private.output_dir / "data_dir.txt").read_text())
    assert private_dir == net.admin.dataset.get(name=job.dataset_name).get_private_path()
    assert not private_dir.is_relative_to(net.admin.network.datasites_dir)
    assert [r.kind for r in net.admin.store.load(job.uid).runs] == ["mock", "private"]


def test_environment_and_working_directory(net, tmp_path: Path, monkeypatch) -> None:
    # secrets in the data owner's environment never reach approved code
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("SYFT_FLWR_IDLE_TIMEOUT", "77")  # the toolkit's own settings do
    main = (
        "import json, os, sys\n"
        "keys = ['DATA_DIR', 'OUTPUT_DIR', 'SYFTBOX_CLIENT_CONFIG_PATH',\n"
        "        'FLWR_TELEMETRY_ENABLED', 'PYTHONUNBUFFERED', 'EXTRA', 'PATH',\n"
        "        'SYFT_FLWR_IDLE_TIMEOUT', 'GITHUB_TOKEN', 'AWS_SECRET_ACCESS_KEY']\n"
        "info = {k: os.environ.get(k) for k in keys}\n"
        "info.update(cwd=os.getcwd(), argv=sys.argv, python=sys.executable)\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'env.json'), 'w').write(json.dumps(info))\n"
    )
    job = approved(net, tmp_path, main)
    # unsandboxed: the owner's environment, filtered (tests/sandbox checks the sandbox's own)
    handle = net.admin.run_private(job, env={"EXTRA": "yes"}, sandbox=False)
    info = json.loads((handle.output_dir / "env.json").read_text())
    assert info["SYFTBOX_CLIENT_CONFIG_PATH"] == str(net.do.client.config_path)
    assert info["FLWR_TELEMETRY_ENABLED"] == "0" and info["PYTHONUNBUFFERED"] == "1"
    assert info["EXTRA"] == "yes"
    assert info["GITHUB_TOKEN"] is None and info["AWS_SECRET_ACCESS_KEY"] is None
    assert info["SYFT_FLWR_IDLE_TIMEOUT"] == "77" and info["PATH"] == os.environ["PATH"]
    assert info["OUTPUT_DIR"] == str(handle.output_dir)
    assert info["argv"] == ["main.py"]
    assert Path(info["python"]).resolve() == Path(sys.executable).resolve()
    run_code = net.admin.store.run_dir(job.uid, 1) / "code"
    assert Path(info["cwd"]) == run_code  # the verified copy, not the inbox
    assert Path(info["cwd"]) != job.code_path


def test_non_blocking_handle(net, tmp_path: Path) -> None:
    main = (  # the sandboxed job sees its output folder: the signal to go is dropped there
        "import os, time\n"
        "go = os.path.join(os.environ['OUTPUT_DIR'], os.environ['GO_FILE'])\n"
        "while not os.path.exists(go):\n"
        "    time.sleep(0.02)\n"
        "raise SystemExit(7)\n"
    )
    job = approved(net, tmp_path, main)
    handle = net.admin.run_private(job, blocking=False, env={"GO_FILE": "go"})
    go = handle.output_dir / "go"
    try:
        assert handle.poll() is None and not handle.done and handle.returncode is None
        assert job.status == "running"
        assert net.guest.job.get(uid=job.uid).status == "running"
        with pytest.raises(Exception, match="already running"):
            net.admin.run_private(job)
        with pytest.raises(TimeoutError, match="still running"):
            handle.wait(timeout=0.05)
    finally:
        go.write_text("")
    assert handle.wait(timeout=30) == 7
    assert handle.done and handle.poll() == 7 and handle.status == "failed"
    assert job.status == "failed"


def test_cancel(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "import time\ntime.sleep(120)\n")
    handle = net.admin.run_private(job, blocking=False)
    handle.cancel()
    assert handle.wait(timeout=30) < 0
    assert handle.reason == "cancelled by the data owner" and job.status == "failed"


def test_rerun_after_share_and_share_picks_latest(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path)
    net.admin.run_mock(job)
    net.admin.job.share_results(job)
    assert json.loads((net.guest.job.get_results(job) / "run.json").read_text())["kind"] == "mock"
    net.admin.run_private(job)
    assert net.guest.job.get(uid=job.uid).status == "completed"
    with pytest.raises(PermissionError):
        net.guest.job.get_results(job)  # a new run is not shared until the owner says so
    net.admin.job.share_results(job)
    results = net.guest.job.get_results(job)
    assert json.loads((results / "run.json").read_text())["kind"] == "private"
    assert (results / "output" / "count.txt").read_text() == "4"


def test_output_symlinks_are_not_shared(net, tmp_path: Path) -> None:
    main = (
        "import os\n"
        "out = os.environ['OUTPUT_DIR']\n"
        "os.symlink(os.path.join(os.environ['DATA_DIR'], 'diabetes.csv'), out + '/leak.csv')\n"
        "open(out + '/ok.txt', 'w').write('fine')\n"
    )
    job = approved(net, tmp_path, main)
    net.admin.run_private(job)
    results = net.admin.job.share_results(job)
    assert sorted(p.name for p in (results / "output").iterdir()) == ["ok.txt"]
    assert json.loads((results / "run.json").read_text())["skipped"] == ["leak.csv"]


def test_owner_process_ending_stops_and_records_its_runs(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "import time\ntime.sleep(120)\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "do_abandons_run.py"), str(net.root), job.uid, "exit"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    pid = int(proc.stdout.split()[0])
    assert _wait_gone(pid)
    record = net.admin.store.load(job.uid)
    assert record.status == "failed" and "data owner's process ended" in record.reason


def test_crashed_owner_process_run_is_marked_failed(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "import time\ntime.sleep(120)\n")
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "do_abandons_run.py"), str(net.root), job.uid, "crash"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    pid = int(proc.stdout.split()[0])
    try:
        assert net.admin.store.load(job.uid).status == "running"  # nobody recorded the end
        assert net.admin.job.get(uid=job.uid).status == "failed"  # ... until the owner looks
        assert "interrupted" in net.admin.job.get(uid=job.uid).reason
        assert net.admin.audit_log()[-1]["event"] == "run_end"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the orphaned job leads its own process group
    assert _wait_gone(pid)
