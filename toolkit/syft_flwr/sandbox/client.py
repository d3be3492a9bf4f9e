"""The trusted side: a ClientApp-like callable that forwards each message to the sandbox.

:class:`SandboxedClientApp` starts the worker (:mod:`syft_flwr.sandbox.worker`) in bubblewrap
with the job's limits, waits until the ClientApp has loaded, and then, for each call from the
:class:`~syft_flwr.transport.node.DatasiteNode`, sends the message and the Context's configs
over the worker's stdin and reads the reply from its stdout. An exception the app raised comes
back as an exception of the same type name (the node turns it into an error reply, as for an
app in process). If the sandbox dies (a limit, a crash), the call raises :class:`SandboxDied`
with the reason, the reason is written to the spec's report file, and ``on_dead`` is called
(the node stops: the job is over).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr.apps import AppLoadError
from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.sandbox.bwrap import bwrap_argv
from syft_flwr.sandbox.errors import SandboxDied, SandboxError
from syft_flwr.sandbox.limits import MiB, SandboxSpec
from syft_flwr.sandbox.process import LimitHit, Watchdog, death_reason, rlimit_setter
from syft_flwr.sandbox.protocol import receive, send

if TYPE_CHECKING:  # flwr loads in the trusted node while the worker starts (see wait_ready)
    from flwr.app import Context, Message

WORKER = "syft_flwr.sandbox.worker"
CLOSE_GRACE = 5.0


class ClientAppRaised(SandboxError):
    """The sandboxed ClientApp raised; subclasses carry the original exception's type name."""


_raised: dict[str, type[ClientAppRaised]] = {}


def remote_exception(type_name: str, message: str) -> ClientAppRaised:
    """An exception whose ``type(exc).__qualname__`` is ``type_name`` (what error replies and
    the node's result show) and whose text is ``message``."""
    cls = _raised.get(type_name)
    if cls is None:
        cls = type(type_name.rsplit(".", 1)[-1], (ClientAppRaised,), {"__qualname__": type_name})
        _raised[type_name] = cls
    return cls(message)


class SandboxedClientApp:
    """Serves ``project_dir``'s ClientApp from a bubblewrap sandbox described by ``spec``."""

    def __init__(
        self,
        project_dir: Path,
        spec: SandboxSpec,
        *,
        on_dead: Callable[[], None] | None = None,
        wait: bool = True,
    ):
        self.project_dir = Path(project_dir).resolve()
        self.spec = spec
        self.on_dead = on_dead
        self.hit: LimitHit | None = None
        self.dead_reason: str | None = None
        self._lock = threading.Lock()
        for folder in (spec.output_dir, spec.scratch_dir):
            Path(folder).mkdir(parents=True, exist_ok=True)
        argv = bwrap_argv(
            [sys.executable, "-m", WORKER, str(self.project_dir)],
            read_only=[self.project_dir, Path(spec.data_dir)],
            writable=[Path(spec.output_dir), Path(spec.scratch_dir)],
            env=spec.env,
            workdir=self.project_dir,
            forbidden=[Path(p) for p in spec.forbidden],
        )
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=rlimit_setter(spec.limits),  # noqa: PLW1509 - only setrlimit calls
            close_fds=True,
            env={"PATH": spec.env.get("PATH", "/usr/bin:/bin")},  # bwrap's own, seen in /proc/1
        )
        self._watchdog = Watchdog(
            self._proc.pid,
            spec.limits,
            [Path(spec.output_dir), Path(spec.scratch_dir)],
            on_hit=self._limit_hit,
        )
        self._ready = False
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the worker has loaded the ClientApp. If it could not: AppLoadError, the
        sandbox is closed and ``on_dead`` called (a limit that ended it is reported)."""
        if self._ready:
            return
        hello = self._read_header()
        if hello is None or not hello.get("ready"):
            self.close()
            hit = self.hit or self._watchdog.hit  # e.g. the wall clock ran out while loading
            why = (hello or {}).get("error") or (hit and hit.reason) or "the worker did not start"
            self.dead_reason = f"the ClientApp could not start: {why}"
            if hit is not None:
                self._report(hit, self._proc.returncode)
            if self.on_dead is not None:
                self.on_dead()
            raise AppLoadError(str(why))
        self._ready = True

    @property
    def pid(self) -> int:
        """The ``bwrap`` process's id."""
        return self._proc.pid

    def __call__(self, message: Message, context: Context) -> Message:
        with self._lock:
            if self.dead_reason is not None:
                raise SandboxDied(self.dead_reason)
            self.wait_ready()
            header = {
                "run_id": context.run_id,
                "node_id": context.node_id,
                "node_config": dict(context.node_config),
                "run_config": dict(context.run_config),
            }
            assert self._proc.stdin is not None
            try:
                send(self._proc.stdin, header, message)
            except OSError:  # a broken pipe: the sandbox is gone
                self._died()
            got = receive(self._proc.stdout)  # type: ignore[arg-type]
            if got is None:
                self._died()
            reply_header, reply = got
            if reply_header.get("fatal"):
                self._died(LimitHit(str(reply_header["fatal"]), self._fatal(reply_header)))
            if reply is None:
                self._died()
            error = reply_header.get("error")
        if error:
            raise remote_exception(str(error["type"]), str(error["message"]))
        return reply

    def close(self) -> None:
        """End the worker: close its stdin (it exits), then kill whatever is left."""
        proc = self._proc
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._watchdog.stop()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SandboxedClientApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _read_header(self) -> dict[str, Any] | None:
        got = receive(self._proc.stdout)  # type: ignore[arg-type]
        return None if got is None else got[0]

    def _fatal(self, header: dict[str, Any]) -> str:
        kind = str(header["fatal"])
        limit = self.spec.limits.output_bytes if kind == "output" else self.spec.limits.memory_bytes
        return f"{kind} limit ({(limit or 0) / MiB:g} MiB) reached: {header.get('error')}"

    def _limit_hit(self, hit: LimitHit) -> None:
        self.hit = self.hit or hit

    def _report(self, hit: LimitHit, returncode: int | None) -> None:
        """Tell the runner which limit ended the sandbox (``spec.report``)."""
        report = {"reason": hit.reason, "kind": hit.kind, "exit_code": returncode}
        try:
            atomic_write_json(Path(self.spec.report), report)
        except OSError as exc:
            logger.error(f"could not write the sandbox report {self.spec.report}: {exc}")

    def _died(self, hit: LimitHit | None = None) -> Any:
        """Record why the sandbox is gone, kill what is left, tell the node; raise."""
        self._proc.kill()
        returncode = self._proc.wait()
        self._watchdog.stop()
        hit = hit or self.hit or self._watchdog.hit or death_reason(returncode, self.spec.limits)
        self.hit = hit
        reason = hit.reason if hit else f"the sandbox exited with code {returncode}"
        self.dead_reason = reason
        logger.error(f"the sandboxed ClientApp ended: {reason}")
        if hit is not None:
            self._report(hit, returncode)
        if self.on_dead is not None:
            self.on_dead()
        raise SandboxDied(reason)


def read_report(path: Path) -> dict[str, Any] | None:
    """The report a trusted node wrote when its sandbox died (None if it did not)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
