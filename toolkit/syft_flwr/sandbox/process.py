"""Enforcing a sandbox's limits: kernel limits set before ``exec`` and a watchdog thread.

Each process of the sandbox gets ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space:
the memory limit plus ``AS_HEADROOM`` for what runtimes reserve but never touch) and
``RLIMIT_FSIZE`` (largest file); the watchdog samples the sandbox's whole process tree
(``/proc/<pid>/task/*/children``) every ``WATCH_INTERVAL`` seconds and kills it when the tree
together passes the wall clock, CPU, resident memory, process count or output size limit.
Killing ``bwrap`` is enough: ``--die-with-parent`` and the sandbox's own PID namespace end
every process in it, a ``setsid`` child included; the watchdog also kills what it saw.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from syft_flwr.sandbox.limits import MiB, SandboxLimits

WATCH_INTERVAL = 0.05
#: address space a process may reserve beyond the memory limit (thread stacks, arenas)
AS_HEADROOM = 2048 * MiB
#: the output folders are measured every this many samples (a walk of the folders)
OUTPUT_EVERY = 5
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LimitHit:
    """Which limit ended a sandbox (``kind``: wall, cpu, memory, processes, output) and how."""

    kind: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "reason": self.reason}


def rlimit_setter(limits: SandboxLimits) -> Callable[[], None]:
    """A ``preexec_fn`` setting the per-process kernel limits of ``limits``."""
    pairs: list[tuple[int, int, int]] = []  # (resource, soft, hard)
    if limits.cpu_seconds:  # SIGXCPU at the soft limit (SIGKILL at the hard one says less)
        cpu = int(limits.cpu_seconds)
        pairs.append((resource.RLIMIT_CPU, cpu, cpu + 1))
    if limits.memory_bytes:
        memory = int(limits.memory_bytes) + AS_HEADROOM
        pairs.append((resource.RLIMIT_AS, memory, memory))
    if limits.output_bytes:
        pairs.append((resource.RLIMIT_FSIZE, int(limits.output_bytes), int(limits.output_bytes)))

    def apply() -> None:
        for which, soft, hard in pairs:
            resource.setrlimit(which, (soft, hard))

    return apply


def death_reason(returncode: int | None, limits: SandboxLimits) -> LimitHit | None:
    """The limit a sandbox's exit status shows (bwrap exits 128 + the signal), if any."""
    if returncode is None:
        return None
    signum = returncode - 128 if returncode > 128 else -returncode
    if signum == signal.SIGXCPU:
        return LimitHit("cpu", f"CPU limit ({limits.cpu_seconds} s per process) reached")
    if signum == signal.SIGXFSZ:
        return LimitHit("output", f"output limit ({_mib(limits.output_bytes)}) reached")
    return None


def limit_error_in(log: Path, limits: SandboxLimits) -> LimitHit | None:
    """The limit the end of ``log`` (a job's stderr) shows: a MemoryError (the address-space
    limit) or "File too large" (the file-size limit; Python ignores SIGXFSZ)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            tail = fh.read()
    except OSError:
        return None
    if b"MemoryError" in tail:
        return LimitHit("memory", f"memory limit ({_mib(limits.memory_bytes)}) reached")
    if b"[Errno 27] File too large" in tail:
        return LimitHit("output", f"output limit ({_mib(limits.output_bytes)}) reached")
    return None


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children, ... (not ``pid`` itself)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _usage(pids: Iterable[int]) -> tuple[int, float]:
    """Resident bytes and CPU seconds of ``pids`` together."""
    rss, cpu = 0, 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/statm") as fh:
                rss += int(fh.read().split()[1]) * _PAGE
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / _TICKS
    return rss, cpu


def folder_bytes(folders: Iterable[Path]) -> int:
    """Bytes of the regular files under ``folders`` (links not followed)."""
    total = 0
    todo = [str(f) for f in folders]
    while todo:
        with contextlib.suppress(OSError), os.scandir(todo.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
    return total


def _mib(n: float | None) -> str:
    return f"{(n or 0) / MiB:g} MiB"


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (children first seen, then ``pid``)."""
    for child in reversed(descendants(pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


class Watchdog:
    """Watches the process tree under ``pid`` (a ``bwrap``) against ``limits``; on a breach
    it kills the tree and calls ``on_hit(LimitHit)`` once. ``stop()`` ends the watch."""

    def __init__(
        self,
        pid: int,
        limits: SandboxLimits,
        folders: Iterable[Path],
        on_hit: Callable[[LimitHit], None] | None = None,
    ):
        self.pid = pid
        self.limits = limits
        self.folders = [Path(f) for f in folders]
        self.hit: LimitHit | None = None
        self._on_hit = on_hit
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"sandbox-watch-{pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def check(self, sample: int = 0) -> LimitHit | None:
        """The limit the sandbox passes now, if any."""
        limits = self.limits
        if limits.wall_seconds and time.monotonic() - self._started > limits.wall_seconds:
            return LimitHit("wall", f"wall-clock limit ({limits.wall_seconds:g} s) reached")
        pids = descendants(self.pid)
        if limits.processes and len(pids) > limits.processes + 1:  # + bwrap's own init
            return LimitHit("processes", f"process limit ({limits.processes}) reached")
        rss, cpu = _usage(pids)
        if limits.memory_bytes and rss > limits.memory_bytes:
            return LimitHit("memory", f"memory limit ({_mib(limits.memory_bytes)}) reached")
        if limits.cpu_seconds and cpu > limits.cpu_seconds:
            return LimitHit("cpu", f"CPU limit ({limits.cpu_seconds} s) reached")
        measure = limits.output_bytes and sample % OUTPUT_EVERY == 0
        if measure and folder_bytes(self.folders) > (limits.output_bytes or 0):
            return LimitHit("output", f"output limit ({_mib(limits.output_bytes)}) reached")
        return None

    def _run(self) -> None:
        sample = 0
        while not self._stop.wait(WATCH_INTERVAL):
            if not os.path.exists(f"/proc/{self.pid}"):
                return
            hit = self.check(sample)
            sample += 1
            if hit is not None:
                self.hit = hit
                kill_tree(self.pid)
                if self._on_hit is not None:
                    self._on_hit(hit)
                return
