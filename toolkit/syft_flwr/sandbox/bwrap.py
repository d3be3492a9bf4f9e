"""The bubblewrap command line of a job's sandbox.

Inside, the job sees the system's ``/usr`` (and the ``/bin``, ``/lib`` links), the Python
environment (``sys.prefix``, the base prefix, the toolkit's source when installed editable),
its code and its dataset, all read-only at their own paths; it may write only its output and
scratch folders. Every namespace is new (no network, its own PIDs and ``/proc``), every
capability dropped, the environment is the one given, and it dies with its parent.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import syft_flwr
from syft_flwr.sandbox.errors import INSTALL_HINT, BubblewrapMissingError, SandboxError

#: system folders every program needs (bound read-only, or recreated as the links they are)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
#: the few files of /etc the dynamic loader and time functions read
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str:
    """The path of a working ``bwrap``; BubblewrapMissingError (how to install it) if none."""
    path = shutil.which("bwrap")
    if path is None:
        raise BubblewrapMissingError(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    probe = [path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise BubblewrapMissingError(
            f"bubblewrap is installed but cannot create a sandbox here ({done.stderr.strip()}); "
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) "
            f"or {INSTALL_HINT.split(', or ', 1)[1]}"
        )
    return path


def bwrap_available() -> bool:
    """True if bubblewrap works here."""
    try:
        bwrap_path()
    except BubblewrapMissingError:
        return False
    return True


def python_roots() -> list[Path]:
    """The folders this Python needs to run the toolkit: its prefixes and, for an editable
    install, the folder holding the ``syft_flwr`` package. Nested folders are dropped."""
    package_parent = Path(syft_flwr.__file__).resolve().parent.parent
    found = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    found.add(Path(sys.executable).resolve().parent.parent)
    found.add(package_parent)
    return _outermost(found)


def _outermost(paths: Iterable[Path]) -> list[Path]:
    kept: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return sorted(kept)


def _system_args() -> list[str]:
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    for name in SYSTEM_FILES:
        args += ["--ro-bind-try", name, name]
    return args


def bwrap_argv(
    command: list[str],
    *,
    read_only: Iterable[Path],
    writable: Iterable[Path],
    env: Mapping[str, str],
    workdir: Path,
    forbidden: Iterable[Path] = (),
) -> list[str]:
    """``bwrap ... -- command``: ``command`` confined as the module says, with ``read_only``
    (plus the Python roots) and ``writable`` folders at their own paths. SandboxError if a
    folder to bind holds one of ``forbidden`` (e.g. the owner's private keys)."""
    ro = _outermost([*(Path(p).resolve() for p in read_only), *python_roots()])
    rw = [Path(p).resolve() for p in writable]
    for secret in (Path(p).resolve() for p in forbidden):
        for folder in (*ro, *rw):
            if secret.is_relative_to(folder):
                raise SandboxError(
                    f"the sandbox would see {secret} through {folder}; keep the Python "
                    "environment, the job's code and the datasets outside the private folder"
                )
    argv = [bwrap_path(), *_system_args()]
    for folder in ro:
        if not any(folder.is_relative_to(p) for p in ("/usr", "/bin", "/lib", "/lib64")):
            argv += ["--ro-bind", str(folder), str(folder)]
    for folder in rw:
        argv += ["--bind", str(folder), str(folder)]
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--clearenv",
    ]  # fmt: skip
    for key, value in env.items():
        argv += ["--setenv", key, value]
    argv += ["--chdir", str(Path(workdir).resolve()), "--", *command]
    return argv
