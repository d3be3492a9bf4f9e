"""A Flower job through the real data-owner flow: the trusted node serves the datasite, the
ClientApp runs in bubblewrap behind a pipe. Real processes, real bubblewrap."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from syft_flwr.monitor.status import format_status
from syft_flwr.sandbox import BubblewrapMissingError, SandboxLimits, bwrap_path
from tests.faults.helpers import JOB_TIMEOUT, TINY_APP, federation, tiny_data, wait_for
from tests.sandbox.conftest import needs_bwrap
from tests.sandbox.helpers import events
from tests.support import DATASITES

pytestmark = needs_bwrap
DO1, DO2 = DATASITES
VALUES = [1.0, 2.0, 3.0, 10.0, 20.0]  # tiny_data: do1 has 1, 2, 3 and do2 10, 20

#: added to the tiny app's ClientApp: it fails loudly if it reaches anything of the owner's
HOSTILE = """

def _hostile(context) -> None:
    import os, socket
    from pathlib import Path

    escaped = []
    for path in {paths!r}:
        try:
            Path(path).read_bytes()
            escaped.append("read " + path)
        except OSError:
            pass
    if any(k in os.environ for k in ("SYFTBOX_CLIENT_CONFIG_PATH", "OWNER_TOKEN")):
        escaped.append("saw the owner's environment")
    if os.getpid() > 100:
        escaped.append("shares the owner's PID namespace")
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        escaped.append("opened a socket")
    except OSError:
        pass
    if escaped:
        raise RuntimeError("; ".join(escaped))
    if {hog!r} and "20.0" in (get_syftbox_dataset_path() / "values.txt").read_text():  # do2
        bytearray(64 * 1024**3)
"""
FIRST_LINE = '    if (get_syftbox_dataset_path() / "FAIL").exists():'


def _hostile_app(tmp: Path, root: Path, *, hog: bool = False) -> Path:
    app = tmp / "hostile_app"
    shutil.copytree(TINY_APP, app)
    private = root / "net" / "private"
    names = ("keys/ed25519.pem", "keys/x25519.pem", "identity.json", "rds/audit.jsonl")
    paths = [str(private / email / name) for email in DATASITES for name in names]
    client = app / "tiny_app" / "client_app.py"
    text = client.read_text()
    assert FIRST_LINE in text
    text = text.replace(FIRST_LINE, "    _hostile(context)\n" + FIRST_LINE)
    client.write_text(text + HOSTILE.format(paths=paths, hog=hog))
    return app


def _result(fed) -> dict:
    return json.loads((fed.project / "result.json").read_text())


def _run_all(fed, **options) -> None:
    for owner in fed.owners.values():
        job = owner.admin.job.get(uid=owner.job_uid)
        env = {"SYFT_FLWR_IDLE_TIMEOUT": "60"}
        handle = owner.admin.run_private(
            job, blocking=False, timeout=JOB_TIMEOUT, env=env, **options
        )
        owner.runs.append(handle)


def test_the_tiny_app_gives_the_exact_result_from_the_sandbox(tmp_path: Path) -> None:
    with federation(tmp_path, TINY_APP, tiny_data(tmp_path)) as fed:
        _run_all(fed, limits=SandboxLimits(wall_seconds=120))
        limits = "wall 120 s, memory 4096 MiB, processes 64, output 1024 MiB"

        def shown() -> bool:  # `syft-flwr status` shows each datasite's sandbox limits
            return format_status(fed.network).count(f"(sandbox: {limits})") == 2

        wait_for(shown, "the datasites' limits in the status table")
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        result = _result(fed)
        mean = sum(VALUES) / len(VALUES)
        assert result["count"] == 5 and result["datasites"] == 2
        assert result["mean"] == mean
        assert result["variance"] == sum(v * v for v in VALUES) / len(VALUES) - mean**2
        for owner in fed.owners.values():
            assert owner.run.status == "completed", owner.logs()
            start = events(owner.admin, "run_start")[-1]
            assert start["sandbox"]["processes"] == 64  # the defaults, recorded
            assert not events(owner.admin, "sandbox_opt_out")


def test_a_hostile_clientapp_reaches_nothing_and_the_result_stays_exact(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("OWNER_TOKEN", "owner-secret")
    app = _hostile_app(tmp_path, tmp_path / "root")
    with federation(tmp_path, app, tiny_data(tmp_path)) as fed:
        assert (fed.network.private_keys_dir(DO1) / "ed25519.pem").is_file()  # what it tries
        _run_all(fed)
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"  # no datasite raised
        assert _result(fed)["mean"] == sum(VALUES) / len(VALUES)


def test_a_clientapp_over_its_memory_limit_ends_its_job_with_an_audit_entry(
    tmp_path: Path,
) -> None:
    app = _hostile_app(tmp_path, tmp_path / "root", hog=True)
    with federation(tmp_path, app, tiny_data(tmp_path)) as fed:
        _run_all(fed, limits=SandboxLimits(memory_bytes=512 * 1024**2))
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode != 0  # do2 failed
        assert "memory limit (512 MiB)" in done.stderr + done.stdout, done
        assert _result(fed)["count"] == 3 and _result(fed)["datasites"] == 1  # do1's only
        run = fed.owners[DO2].run
        assert run.status == "failed" and "memory limit (512 MiB)" in str(run.reason)
        hit = events(fed.owners[DO2].admin, "sandbox_limit")[-1]
        assert hit["limit"] == "memory" and hit["job_id"] == fed.owners[DO2].job_uid
        assert fed.owners[DO1].run.status == "completed"


def test_without_bubblewrap_a_job_runs_only_when_the_owner_opts_out(
    tmp_path: Path, monkeypatch
) -> None:
    with federation(tmp_path, TINY_APP, tiny_data(tmp_path)) as fed:
        owner = fed.owners[DO1]
        job = owner.admin.job.get(uid=owner.job_uid)
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        bwrap_path.cache_clear()
        try:
            with pytest.raises(BubblewrapMissingError, match="apt-get install bubblewrap"):
                owner.admin.run_private(job)
            assert owner.admin.job.get(uid=owner.job_uid).status == "approved"
            assert not events(owner.admin, "run_start")
        finally:
            monkeypatch.setenv("PATH", os.environ["PATH"])
            monkeypatch.undo()
            bwrap_path.cache_clear()
        _run_all(fed, sandbox=False)
        done = fed.aggregate("--timeout", "60")
        for each in fed.owners.values():
            each.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        opted = events(owner.admin, "sandbox_opt_out")
        assert len(opted) == 1 and opted[0]["job_id"] == owner.job_uid
        assert events(owner.admin, "run_start")[-1]["sandbox"] == "off"


SHADOW = """
import os, sys
if "SYFT_FLWR_SANDBOX" in os.environ:  # the data owner's trusted node (the DS's aggregator
    with open({marker!r}, "w") as fh:  # and the sandboxed worker may import it)
        fh.write(str(os.getpid()))
del sys.modules[__name__]
sys.path = [p for p in sys.path if p not in ("", os.getcwd())]
import loguru  # the real one
"""


def test_a_module_of_the_job_never_loads_in_the_trusted_node(tmp_path: Path) -> None:
    marker = tmp_path / "trusted-node-imported-the-jobs-module"
    app = tmp_path / "shadowing_app"
    shutil.copytree(TINY_APP, app)
    (app / "loguru.py").write_text(SHADOW.format(marker=str(marker)))
    with federation(tmp_path, app, tiny_data(tmp_path)) as fed:
        _run_all(fed)
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
        assert done.returncode == 0, f"{done}\n{fed.logs()}"
        assert _result(fed)["mean"] == sum(VALUES) / len(VALUES)
    assert not marker.exists(), "the job's loguru.py ran with the owner's rights"


def test_a_clientapp_that_cannot_load_ends_its_job_with_the_reason(tmp_path: Path) -> None:
    app = tmp_path / "broken_app"
    shutil.copytree(TINY_APP, app)
    (app / "tiny_app" / "client_app.py").write_text("import no_such_module_xyz\n")
    with federation(tmp_path, app, tiny_data(tmp_path)) as fed:
        _run_all(fed)
        done = fed.aggregate("--timeout", "60")
        for owner in fed.owners.values():
            owner.run.wait(timeout=60)
            assert owner.run.status == "failed"
            assert "no_such_module_xyz" in owner.run.stderr_path.read_text()
            assert not events(owner.admin, "sandbox_limit")  # no limit: the app's own fault
        assert done.returncode != 0
        assert "could not load the clientapp" in done.stdout + done.stderr, done
