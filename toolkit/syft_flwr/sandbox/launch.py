"""How the job runner starts a sandboxed job (the runner calls :func:`plan_launch`).

- A bootstrapped Flower app that names the owner as a datasite: the runner starts the trusted
  node (:mod:`syft_flwr.sandbox.job`, toolkit code, with the owner's rights and environment);
  only the ClientApp runs in the sandbox, behind a pipe. The job's ``main.py`` is not run.
- Any other job: the whole entrypoint runs in the sandbox, watched by the runner.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from syft_flwr.config import JOB_ID_ENV, flower_components, load_project_config
from syft_flwr.network.layout import Network
from syft_flwr.sandbox.bwrap import bwrap_argv
from syft_flwr.sandbox.limits import SANDBOX_ENV, SandboxLimits, SandboxSpec

#: what the sandboxed code may see of the owner's environment (values copied when set)
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class Launch:
    """The command the runner starts, its environment, and for a whole-job sandbox the limits
    and folders its watchdog enforces (``confine``; None: the trusted node enforces them)."""

    argv: list[str]
    env: dict[str, str]
    report: Path
    confine: SandboxLimits | None = None
    watched: list[Path] = field(default_factory=list)


def is_flower_datasite_job(code_dir: Path, owner: str) -> bool:
    """True if ``code_dir`` is a bootstrapped Flower app with ``owner`` as a datasite."""
    try:
        flower_components(code_dir)
        return load_project_config(code_dir).role_of(owner) == "datasite"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def sandbox_env(
    data_dir: Path, output_dir: Path, scratch: Path, job_id: str, extra: dict[str, str]
) -> dict[str, str]:
    """The whole environment of the sandboxed code: no token or key of the owner's."""
    env = {k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    return {
        **env,
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "MPLCONFIGDIR": str(scratch),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "DATA_DIR": str(data_dir),
        "OUTPUT_DIR": str(output_dir),
        JOB_ID_ENV: job_id,
        **extra,
    }


def plan_launch(
    network: Network,
    owner: str,
    job_id: str,
    run: int,
    entrypoint: str,
    *,
    data_dir: Path,
    output_dir: Path,
    limits: SandboxLimits,
    trusted_env: dict[str, str],
    extra: dict[str, str],
) -> Launch:
    """What to start for run ``run`` of ``owner``'s job ``job_id`` (its code copied to
    ``network.job_run_dir(...)/code``). ``trusted_env`` is the environment the trusted node
    gets (the runner's usual one); ``extra`` is what the owner passed for the job."""
    code_dir = network.job_run_dir(owner, job_id, run) / "code"
    scratch = network.job_scratch_dir(owner, job_id, run)
    scratch.mkdir(parents=True, exist_ok=True)
    report = network.sandbox_report_path(owner, job_id, run)
    env = sandbox_env(data_dir, output_dir, scratch, job_id, extra)
    forbidden = (network.private_keys_dir(owner), network.identity_path(owner))
    if is_flower_datasite_job(code_dir, owner):
        spec = SandboxSpec(
            data_dir=str(data_dir),
            output_dir=str(output_dir),
            scratch_dir=str(scratch),
            limits=limits,
            report=str(report),
            env=env,
            forbidden=tuple(str(p) for p in forbidden),
        )
        # -P: the code folder (its working directory) is not on sys.path, so no module of the
        # job's can shadow one the trusted node imports
        argv = [sys.executable, "-P", "-m", "syft_flwr.sandbox.job", str(code_dir)]
        return Launch(argv, {**trusted_env, SANDBOX_ENV: spec.to_env()}, report)
    argv = bwrap_argv(
        [sys.executable, entrypoint],
        read_only=[code_dir, data_dir],
        writable=[output_dir, scratch],
        env=env,
        workdir=code_dir,
        forbidden=forbidden,
    )
    return Launch(argv, {"PATH": env["PATH"]}, report, limits, [output_dir, scratch])
