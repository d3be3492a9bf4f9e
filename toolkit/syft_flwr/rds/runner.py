"""The job runner: verify the approved code, run it on private or mock data, record the run.

A run copies the job's code from the owner's copy taken at intake (never from the shared
inbox) into ``<private>/rds/jobs/<id>/runs/<n>/code``, hashing exactly the bytes it copies,
and refuses if the hash is not the one pinned at approval.
The entrypoint runs as ``[sys.executable, entrypoint]`` in its own process group with the copy
as working directory; stdout and stderr go straight to log files (no pipe that can fill up).
A timeout kills the whole process group.

The runner works on the data owner's records only: it is given the :class:`JobStore`, the
:class:`AuditLog` and the :class:`StatusMirror` (``OwnerJobs.run`` does that), never a session.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.config import CONFIG_ENV, JOB_ID_ENV
from syft_flwr.network.layout import Network
from syft_flwr.rds.audit import AuditLog, audited_refusal
from syft_flwr.rds.code import SubmissionLimits, copy_code
from syft_flwr.rds.errors import JobStateError
from syft_flwr.rds.mirror import StatusMirror
from syft_flwr.rds.records import RUNNABLE, JobRecord, JobStatus, RunRecord
from syft_flwr.rds.store import JobStore
from syft_flwr.sandbox.bwrap import bwrap_path
from syft_flwr.sandbox.client import read_report
from syft_flwr.sandbox.launch import Launch, plan_launch
from syft_flwr.sandbox.limits import DEFAULT_LIMITS, SANDBOX_ENV, SandboxLimits
from syft_flwr.sandbox.process import (
    LimitHit,
    Watchdog,
    death_reason,
    limit_error_in,
    rlimit_setter,
)

DEFAULT_TIMEOUT = 3600.0
KILL_GRACE_SECONDS = 3.0
#: Variables the runner sets; a caller's ``env`` may not replace them.
RESERVED_ENV = (
    "DATA_DIR",
    "OUTPUT_DIR",
    CONFIG_ENV,
    JOB_ID_ENV,
    "FLWR_TELEMETRY_ENABLED",
    "PYTHONUNBUFFERED",
    SANDBOX_ENV,
)
#: refusal reasons copied into one audit entry (the security logs keep them all)
AUDITED_REASONS = 20
#: What a job inherits from the data owner's environment: what Python, numpy and matplotlib
#: need to run, the toolkit's own settings, and nothing else (no tokens, keys or passwords
#: that happen to be set where the data owner works). Names ending in ``*`` are prefixes.
#: Pass anything else a job needs explicitly: ``run_private(job, env={...})``.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "TERM",
    "LD_LIBRARY_PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHON*",
    "SYFT_FLWR_*",
    "FLWR_*",
    "MPL*",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def inherited_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The part of ``environ`` (default: this process's) a job may see; see INHERITED_ENV."""
    environ = dict(os.environ if environ is None else environ)
    exact = {name for name in INHERITED_ENV if not name.endswith("*")}
    prefixes = tuple(name[:-1] for name in INHERITED_ENV if name.endswith("*"))
    return {k: v for k, v in environ.items() if k in exact or k.startswith(prefixes)}


_active: weakref.WeakSet[RunHandle] = weakref.WeakSet()


class RunHandle:
    """A run of a job: ``wait()``, ``poll()``, ``done``, ``returncode``, ``cancel()``.

    ``status`` is the run's final status (``completed``/``failed``) once done.
    """

    def __init__(
        self,
        store: JobStore,
        audit: AuditLog,
        mirror: StatusMirror,
        uid: str,
        record: RunRecord,
        timeout: float,
    ):
        self._store = store
        self._audit = audit
        self._mirror = mirror
        self.job_uid = uid
        self.run_number: int = record.n
        self.kind: str = record.kind
        self.stdout_path = Path(record.stdout)
        self.stderr_path = Path(record.stderr)
        self.output_dir = Path(record.output_dir)
        self.timeout = timeout
        self.returncode: int | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self.duration_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._finished = threading.Event()
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        self._launch: Launch | None = None  # a sandboxed run's plan
        self._watchdog: Watchdog | None = None
        self.limit_hit: LimitHit | None = None  # the sandbox limit that ended the run

    @property
    def pid(self) -> int | None:
        """The job process's id (None before it started)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def done(self) -> bool:
        """True once the run has finished and its outcome is recorded."""
        return self._finished.is_set()

    def poll(self) -> int | None:
        """The exit code if the run has finished (and been recorded), else None."""
        return self.returncode if self.done else None

    def wait(self, timeout: float | None = None) -> int:
        """Block until the run is finished and recorded; returns its exit code.

        TimeoutError if ``timeout`` passes first (the run goes on).
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(
                f"run {self.run_number} of job {self.job_uid} still running after {timeout} s "
                "(it goes on; call wait() again or cancel())"
            )
        assert self.returncode is not None
        return self.returncode

    def cancel(self, reason: str = "cancelled by the data owner") -> None:
        """Kill the run's process group; the run is recorded as failed with ``reason``."""
        if self._proc is not None and not self.done:
            self._stop_reason = reason
            _kill_group(self._proc)

    # -- internals ----------------------------------------------------------------------------
    def _start(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        blocking: bool,
        launch: Launch | None = None,
    ) -> None:
        started = time.monotonic()
        self._launch = launch
        confine = launch.confine if launch is not None else None
        try:
            with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # its own process group, killed as a whole
                    preexec_fn=rlimit_setter(confine) if confine else None,  # noqa: PLW1509
                )
        except OSError as exc:
            self._finish(None, started, f"could not start the job: {exc}")
            raise
        if confine is not None and launch is not None:
            self._watchdog = Watchdog(self._proc.pid, confine, launch.watched, self._limit_hit)
        _active.add(self)
        if blocking:
            try:
                self._watch(started)
            except BaseException:  # e.g. KeyboardInterrupt in a notebook: do not orphan it
                self._stop_reason = "interrupted while the data owner waited for it"
                _kill_group(self._proc)
                self._watch(started)
                raise
        else:
            self._thread = threading.Thread(
                target=self._watch, args=(started,), name=f"rds-run-{self.job_uid}", daemon=True
            )
            self._thread.start()

    def _watch(self, started: float) -> None:
        proc = self._proc
        assert proc is not None
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._stop_reason = "timeout"
            logger.warning(
                f"job {self.job_uid} exceeded its timeout of {self.timeout:g} s; killing it"
            )
            _kill_group(proc)
        _kill_group(proc, grace=0)  # whatever it left behind in its group
        self._finish(proc.returncode, started, self._stop_reason)

    def _limit_hit(self, hit: LimitHit) -> None:
        """The watchdog of a whole-job sandbox ended it (it killed the sandbox's tree)."""
        self.limit_hit = self.limit_hit or hit
        self._stop_reason = f"sandbox: {hit.reason}"
        if self._proc is not None:
            _kill_group(self._proc, grace=0)

    def _sandbox_outcome(self, returncode: int | None) -> LimitHit | None:
        """The limit that ended a sandboxed run: the watchdog's, the trusted node's report,
        or the exit status (CPU, file size)."""
        launch = self._launch
        if launch is None:
            return None
        if self._watchdog is not None:
            self._watchdog.stop()
        if self.limit_hit is not None:
            return self.limit_hit
        report = read_report(launch.report)
        if report is not None:
            return LimitHit(str(report.get("kind")), str(report.get("reason")))
        if launch.confine is not None and returncode:
            confine = launch.confine
            return death_reason(returncode, confine) or limit_error_in(self.stderr_path, confine)
        return None

    def _finish(self, returncode: int | None, started: float, stop_reason: str | None) -> None:
        if self.done:
            return
        self.limit_hit = self._sandbox_outcome(returncode)
        if self.limit_hit is not None:
            stop_reason = f"sandbox: {self.limit_hit.reason}"
        self.duration_s = round(time.monotonic() - started, 3)
        self.returncode = returncode if returncode is not None else -1
        if stop_reason is not None:
            status, reason = JobStatus.FAILED, stop_reason
        elif self.returncode != 0:
            status, reason = JobStatus.FAILED, f"exit code {self.returncode}"
        else:
            status, reason = JobStatus.COMPLETED, None
        self.status, self.reason = str(status), reason

        def finish(job: JobRecord) -> None:
            for run in job.runs:
                if run.n == self.run_number:
                    run.finish(status, reason, self.returncode, self.duration_s)
            if job.status == JobStatus.RUNNING and job.runs[-1].n == self.run_number:
                job.set_status(status, reason)

        try:
            record = self._store.update(self.job_uid, finish)  # the outcome is kept, whatever
            self._mirror.publish(record)
            try:
                self._audit.append(
                    "run_end",
                    job_id=self.job_uid,
                    run=self.run_number,
                    kind=self.kind,
                    status=str(status),
                    exit_code=self.returncode,
                    duration_s=self.duration_s,
                    reason=reason,
                )
                if self.limit_hit is not None:
                    self._audit.append(
                        "sandbox_limit",
                        job_id=self.job_uid,
                        run=self.run_number,
                        limit=self.limit_hit.kind,
                        reason=self.limit_hit.reason,
                    )
                self._audit_refusals()
            except Exception as exc:  # noqa: BLE001 - a broken log must not lose the outcome
                logger.error(
                    f"could not audit the end of run {self.run_number} of job {self.job_uid}: {exc}"
                )
        finally:
            _active.discard(self)
            self._finished.set()
        log = logger.info if status == JobStatus.COMPLETED else logger.warning
        log(
            f"job {self.job_uid} run {self.run_number} ({self.kind}) {status}"
            + (f": {reason}" if reason else "")
            + f" in {self.duration_s:g} s"
        )

    def _audit_refusals(self) -> None:
        """Copy what the job's datasite node refused during the run (forged, altered,
        replayed, misaddressed message files) from its security logs into the audit log."""
        refused = refused_messages_since(self._store.network, self._store.owner, self._started_at)
        if refused:
            kinds = dict(Counter(str(entry.get("kind")) for entry in refused))
            self._audit.append(
                "messages_refused",
                job_id=self.job_uid,
                run=self.run_number,
                count=len(refused),
                kinds=kinds,
                refusals=[
                    {k: entry.get(k) for k in ("app", "file", "kind", "sender", "reason")}
                    for entry in refused[:AUDITED_REASONS]
                ],
            )
            logger.warning(
                f"job {self.job_uid} run {self.run_number}: {len(refused)} message file(s) "
                f"refused and quarantined ({kinds}); see audit_log()"
            )

    def __repr__(self) -> str:
        state = f"{self.status}, exit code {self.returncode}" if self.done else "running"
        return (
            f"RunHandle(job={self.job_uid!r}, run={self.run_number}, kind={self.kind!r}, {state})"
        )


def refused_messages_since(network: Network, email: str, since: float) -> list[dict[str, Any]]:
    """Refusals recorded since ``since`` (epoch s) in the security logs of ``email``'s Flower
    apps (:meth:`Network.security_logs`), oldest first. Unreadable lines are skipped: the logs
    are the node's, this only summarises them."""
    found: list[dict[str, Any]] = []
    for log in network.security_logs(email):
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            ts = entry.get("ts") if isinstance(entry, dict) else None
            if isinstance(ts, int | float) and ts >= since:
                found.append({**entry, "app": log.parent.name})
    return sorted(found, key=lambda e: e["ts"])


def _kill_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``grace`` seconds."""
    try:
        pgid = proc.pid  # start_new_session: the job leads its own group
        if grace > 0:
            os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@atexit.register
def _stop_active_runs() -> None:
    """The data owner's process is ending: stop its runs and record them as failed."""
    for handle in list(_active):
        handle.cancel("interrupted: the data owner's process ended during the run")
        if handle._thread is not None:
            handle._thread.join(timeout=KILL_GRACE_SECONDS + 2)


def check_run_options(kind: str, timeout: float, env: dict[str, str] | None) -> dict[str, str]:
    """Check the options of a run; returns the caller's extra environment."""
    if kind not in ("private", "mock"):
        raise ValueError(f"kind must be 'private' or 'mock', not {kind!r}")
    if timeout is None or timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds")
    return _check_env(env)


def start_run(
    store: JobStore,
    audit: AuditLog,
    mirror: StatusMirror,
    job_id: str,
    kind: str,
    data_dir: Path,
    *,
    config_path: Path,
    limits: SubmissionLimits,
    blocking: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    env: dict[str, str] | None = None,
    sandbox: bool = True,
    sandbox_limits: SandboxLimits = DEFAULT_LIMITS,
) -> RunHandle:
    """Run the approved job ``job_id`` of ``store.owner`` on ``kind`` ("private" or "mock")
    data found in ``data_dir``; see ``Session.run_private``.

    The code is copied from the owner's copy taken at intake (what was reviewed; never from
    the shared inbox) and must hash to the value pinned at approval; any refusal is audited.
    With ``sandbox`` (the default) the job's code runs in bubblewrap with ``sandbox_limits``
    (see :mod:`syft_flwr.sandbox`); BubblewrapMissingError says how to install it.
    ``sandbox=False`` runs it with the owner's rights, and the audit log records that choice.
    """
    extra = check_run_options(kind, timeout, env)
    if sandbox:
        bwrap_path()  # BubblewrapMissingError, with how to install it, before anything runs
    uid = job_id
    reviewed_code = store.network.submitted_code_dir(store.owner, uid)
    run: RunRecord | None = None

    def refuse(message: str, exc_type: type[Exception] = PermissionError) -> Exception:
        return audited_refusal(audit, uid, "run", message, exc_type)

    def begin(job: JobRecord) -> None:
        nonlocal run
        if job.status not in RUNNABLE:
            raise JobStateError(f"job {uid} is {job.status} and cannot run now")
        n = len(job.runs) + 1
        run_dir = store.run_dir(uid, n)
        shutil.rmtree(run_dir, ignore_errors=True)  # a refused attempt may have left a copy
        try:
            copied = copy_code(reviewed_code, run_dir / "code", limits)
        except (ValueError, OSError) as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise refuse(f"refusing to run job {uid}: {exc}") from exc
        if copied != job.pinned_sha256:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise refuse(
                f"refusing to run job {uid}: its code changed after approval (approved hash "
                f"{str(job.pinned_sha256)[:12]}…, now {copied[:12]}…). Reject it and ask the "
                "submitter to submit the new code as a new job"
            )
        if not (run_dir / "code" / job.entrypoint).is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
            raise refuse(f"job {uid} has no entrypoint {job.entrypoint!r}", ValueError)
        (run_dir / "output").mkdir(parents=True, exist_ok=True)
        run = RunRecord(
            n=n,
            kind=kind,
            code_sha256=copied,
            code_dir=str(run_dir / "code"),
            data_dir=str(data_dir),
            output_dir=str(run_dir / "output"),
            stdout=str(run_dir / "stdout.log"),
            stderr=str(run_dir / "stderr.log"),
            timeout_s=timeout,
            watcher_pid=os.getpid(),
        )
        audit.append(
            "run_start",
            job_id=uid,
            run=n,
            kind=kind,
            code_sha256=copied,
            entrypoint=job.entrypoint,
            sandbox=sandbox_limits.to_json() if sandbox else "off",
        )
        if not sandbox:
            audit.append(
                "sandbox_opt_out",
                job_id=uid,
                run=n,
                kind=kind,
                note="the data owner ran this job without a sandbox, with the owner's rights",
            )
        job.runs.append(run)
        job.set_status(JobStatus.RUNNING)

    record = store.update(uid, begin)
    mirror.publish(record)
    assert run is not None

    run_env = {
        **inherited_env(),
        **extra,
        "DATA_DIR": str(data_dir),
        "OUTPUT_DIR": run.output_dir,
        CONFIG_ENV: str(config_path),
        JOB_ID_ENV: uid,
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    handle = RunHandle(store, audit, mirror, uid, run, timeout)
    if not sandbox:
        logger.warning(f"running job {record.name!r} ({uid}) run {run.n} WITHOUT a sandbox")
        handle._start([sys.executable, record.entrypoint], Path(run.code_dir), run_env, blocking)
        return handle
    launch = plan_launch(
        store.network,
        store.owner,
        uid,
        run.n,
        record.entrypoint,
        data_dir=Path(data_dir),
        output_dir=Path(run.output_dir),
        limits=sandbox_limits,
        trusted_env=run_env,
        extra=extra,
    )
    logger.info(
        f"running job {record.name!r} ({uid}) run {run.n} on {kind} data in a sandbox "
        f"({sandbox_limits.describe()})"
    )
    handle._start(launch.argv, Path(run.code_dir), launch.env, blocking, launch)
    return handle


def _check_env(env: dict[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ValueError("env must be a dict of str to str")
    clash = sorted(set(env) & set(RESERVED_ENV))
    if clash:
        raise ValueError(f"env may not set {clash}: the runner sets them for every job")
    return dict(env)
