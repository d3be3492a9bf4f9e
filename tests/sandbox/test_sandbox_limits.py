"""The owner's limits end every process of a sandboxed job, a ``setsid`` child included, and
the audit log says which limit ended it. Real bubblewrap, real jobs."""

from __future__ import annotations

import uuid
from pathlib import Path

from syft_flwr.sandbox import SandboxLimits
from syft_flwr.sandbox.limits import MiB
from tests.rds.rds_helpers import DATASET, approved
from tests.sandbox.conftest import needs_bwrap
from tests.sandbox.helpers import events, wait_none_alive

pytestmark = needs_bwrap


def _spawner(marker: str) -> str:
    """A job that leaves a setsid child, a double-forked daemon and a plain child, each
    sleeping with ``marker`` in its command line, and then sleeps itself."""
    sleeper = (
        f"['{__import__('sys').executable}', '-c', 'import time; time.sleep(300)', '{marker}']"
    )
    return (
        "import os, subprocess, time\n"
        f"argv = {sleeper}\n"
        "subprocess.Popen(argv, start_new_session=True)\n"
        "subprocess.Popen(argv)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.execv(argv[0], argv)\n"
        "    os._exit(0)\n"
        "print('spawned', flush=True)\n"
        "time.sleep(300)\n"
    )


def test_the_wall_clock_limit_ends_every_process_a_setsid_child_included(
    net, tmp_path: Path
) -> None:
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    job = approved(net, tmp_path, _spawner(marker), name="spawner")
    handle = net.admin.run_private(job, limits=SandboxLimits(wall_seconds=2), timeout=60)
    assert handle.status == "failed" and "wall-clock limit (2 s)" in str(handle.reason)
    assert "spawned" in handle.stdout_path.read_text()
    assert wait_none_alive(marker) == [], "a process of the job outlived its limit"
    hit = events(net.admin, "sandbox_limit")[-1]
    assert hit["limit"] == "wall" and hit["job_id"] == job.uid
    assert events(net.admin, "run_end")[-1]["reason"].startswith("sandbox: wall-clock")


def test_the_runners_timeout_ends_a_sandboxed_setsid_child_too(net, tmp_path: Path) -> None:
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    job = approved(net, tmp_path, _spawner(marker), name="spawner")
    handle = net.admin.run_private(job, timeout=2)
    assert handle.status == "failed" and handle.reason == "timeout"
    assert wait_none_alive(marker) == [], "a process of the job outlived the timeout"


def test_a_memory_limit_ends_the_job_with_a_clear_audit_entry(net, tmp_path: Path) -> None:
    main = (
        "import time\n"
        "chunks = []\n"
        "for _ in range(64):\n"  # 64 x 32 MiB, each page touched: resident memory
        "    chunks.append(b'x' * (32 * 1024 * 1024))\n"
        "    time.sleep(0.02)\n"
        "print('allocated everything')\n"
    )
    job = approved(net, tmp_path, main, name="hog")
    handle = net.admin.run_private(job, limits=SandboxLimits(memory_bytes=256 * MiB))
    assert handle.status == "failed", handle.stderr_path.read_text()
    assert "memory limit (256 MiB)" in str(handle.reason)
    assert "allocated everything" not in handle.stdout_path.read_text()
    hit = events(net.admin, "sandbox_limit")[-1]
    assert hit["limit"] == "memory" and "256 MiB" in hit["reason"]


def test_one_huge_allocation_is_refused_by_the_kernel_and_audited(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "x = bytearray(8 * 1024 ** 3)\n", name="huge")
    handle = net.admin.run_private(job, limits=SandboxLimits(memory_bytes=256 * MiB))
    assert handle.status == "failed" and "memory limit" in str(handle.reason)
    assert events(net.admin, "sandbox_limit")[-1]["limit"] == "memory"


def test_an_output_limit_ends_the_job_many_files_or_one(net, tmp_path: Path) -> None:
    many = (
        "import os, time\n"
        "for i in range(40):\n"
        "    with open(os.path.join(os.environ['OUTPUT_DIR'], f'f{i}'), 'wb') as fh:\n"
        "        fh.write(os.urandom(1024 * 1024))\n"
        "    time.sleep(0.02)\n"
        "print('wrote everything')\n"
    )
    one = (
        "import os\n"
        "with open(os.path.join(os.environ['OUTPUT_DIR'], 'big'), 'wb') as fh:\n"
        "    for _ in range(40):\n"
        "        fh.write(b'x' * 1024 * 1024)\n"
        "print('wrote everything')\n"
    )
    for name, main in (("many", many), ("one", one)):
        job = approved(net, tmp_path, main, name=name)
        handle = net.admin.run_private(job, limits=SandboxLimits(output_bytes=8 * MiB))
        assert handle.status == "failed", (name, handle.stderr_path.read_text())
        assert "output limit (8 MiB)" in str(handle.reason), (name, handle.reason)
        assert "wrote everything" not in handle.stdout_path.read_text()
        assert events(net.admin, "sandbox_limit")[-1]["limit"] == "output"


def test_a_process_limit_ends_a_fork_bomb(net, tmp_path: Path) -> None:
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    main = (
        "import subprocess, sys, time\n"
        f"argv = [sys.executable, '-c', 'import time; time.sleep(300)', '{marker}']\n"
        "for _ in range(50):\n"
        "    subprocess.Popen(argv)\n"
        "time.sleep(300)\n"
    )
    job = approved(net, tmp_path, main, name="bomb")
    handle = net.admin.run_private(job, limits=SandboxLimits(processes=10), timeout=60)
    assert handle.status == "failed" and "process limit (10)" in str(handle.reason)
    assert wait_none_alive(marker) == []
    assert events(net.admin, "sandbox_limit")[-1]["limit"] == "processes"


def test_dataset_limits_apply_and_a_jobs_own_limits_win(net, tmp_path: Path) -> None:
    net.admin.set_sandbox_limits(DATASET, SandboxLimits(wall_seconds=1.5, processes=20))
    job = approved(net, tmp_path, "import time\ntime.sleep(30)\n", name="slow")
    handle = net.admin.run_private(job, timeout=60)
    assert "wall-clock limit (1.5 s)" in str(handle.reason)
    start = events(net.admin, "run_start")[-1]["sandbox"]
    assert start["wall_seconds"] == 1.5 and start["processes"] == 20
    again = net.admin.run_private(job, limits=SandboxLimits(wall_seconds=2.5), timeout=60)
    assert "wall-clock limit (2.5 s)" in str(again.reason)
    assert events(net.admin, "run_start")[-1]["sandbox"]["processes"] == 20
    assert events(net.admin, "sandbox_limits_set")[-1]["dataset"] == DATASET


def test_a_cpu_limit_ends_a_busy_job(net, tmp_path: Path) -> None:
    job = approved(net, tmp_path, "while True:\n    pass\n", name="busy")
    handle = net.admin.run_private(job, limits=SandboxLimits(cpu_seconds=1), timeout=60)
    assert handle.status == "failed" and "CPU limit" in str(handle.reason), handle.reason
    assert handle.duration_s is not None and handle.duration_s < 30
    assert events(net.admin, "sandbox_limit")[-1]["limit"] == "cpu"
