"""Load a project's ServerApp and ClientApp without mixing up projects.

Each load imports the project's packages fresh from its own folder (edited code is picked up
by the next run of a notebook) and leaves them importable: the project's folder stays first
on ``sys.path`` and its modules in ``sys.modules``, so the app may import its own package at
any time during the run (a ``client_fn`` that imports a module when called). Loading another
project whose packages have the same names takes their place: apps loaded before keep the
modules they were loaded with. :func:`release` takes a project off the import path again.
"""

from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syft_flwr.config import flower_components
from syft_flwr.errors import EXIT_USAGE, SyftFlwrError

_lock = threading.Lock()


@dataclass(frozen=True)
class FlowerApps:
    server_app: Any  # flwr.serverapp.ServerApp
    client_app: Any  # flwr.clientapp.ClientApp


class AppLoadError(SyftFlwrError, ImportError):
    """A component of ``[tool.flwr.app.components]`` could not be loaded (the module failed
    to import, has a syntax error, or lacks the attribute). The message is one line naming
    the component and the underlying exception, for an ``error: ...`` line."""

    exit_code = EXIT_USAGE  # the app's code or its components table must be fixed


def _resolve(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"component {ref!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _load(kind: str, ref: str, project_dir: Path) -> Any:
    """``_resolve(ref)``, turning an import failure into an :class:`AppLoadError`."""
    try:
        return _resolve(ref)
    except (ImportError, SyntaxError, AttributeError) as exc:
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line
        raise AppLoadError(
            f"could not load the {kind} {ref!r} named in [tool.flwr.app.components] of "
            f"{project_dir / 'pyproject.toml'}: {cause}"
        ) from exc


def _owned(name: str, packages: set[str]) -> bool:
    return name.split(".")[0] in packages


#: project folder -> the top-level package names it currently owns in ``sys.modules``
_importable: dict[Path, set[str]] = {}


def _forget(packages: set[str]) -> None:
    """Unregister the modules of ``packages`` and the folders of projects that served them."""
    for name in [n for n in sys.modules if _owned(n, packages)]:
        del sys.modules[name]
    for folder, owned in list(_importable.items()):
        if owned & packages:
            del _importable[folder]
            while str(folder) in sys.path:
                sys.path.remove(str(folder))


def _load_components(project_dir: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Import the components ``kinds`` ("serverapp", "clientapp") of ``project_dir``."""
    project_dir = Path(project_dir).resolve()
    server_ref, client_ref = flower_components(project_dir)
    refs = {"serverapp": server_ref, "clientapp": client_ref}
    packages = {ref.split(":")[0].split(".")[0] for ref in refs.values()}
    with _lock:
        _forget(packages | _importable.get(project_dir, set()))
        sys.path.insert(0, str(project_dir))
        _importable[project_dir] = packages
        try:
            return {kind: _load(kind, refs[kind], project_dir) for kind in kinds}
        except BaseException:
            _forget(packages)  # a failed load leaves nothing behind
            raise


def release(project_dir: Path) -> None:
    """Take ``project_dir`` off the import path and unregister its modules (objects already
    loaded keep working); nothing happens for a project that is not loaded."""
    project_dir = Path(project_dir).resolve()
    with _lock:
        packages = _importable.get(project_dir)
        if packages is not None:
            _forget(packages)


def load_apps(project_dir: Path) -> FlowerApps:
    """Import both components named in ``[tool.flwr.app.components]`` from ``project_dir``.

    Raises :class:`AppLoadError` when one cannot be imported (ImportError, SyntaxError, a
    missing attribute), ValueError when the table is missing or malformed.
    """
    loaded = _load_components(project_dir, ("serverapp", "clientapp"))
    return FlowerApps(server_app=loaded["serverapp"], client_app=loaded["clientapp"])


def load_server_app(project_dir: Path) -> Any:
    """Only the ServerApp (an aggregator's run does not import the ClientApp's modules)."""
    return _load_components(project_dir, ("serverapp",))["serverapp"]


def load_client_app(project_dir: Path) -> Any:
    """Only the ClientApp: a data owner's job runs none of the ServerApp's module code."""
    return _load_components(project_dir, ("clientapp",))["clientapp"]
