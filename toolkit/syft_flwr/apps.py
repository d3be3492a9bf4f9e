"""Load a project's ServerApp and ClientApp without mixing up projects.

Two projects may share a package name (two copies of the same app side by side in one
process), so each load imports the project's packages fresh from its own folder and then
restores ``sys.modules`` and ``sys.path`` as they were.
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


def _load_components(project_dir: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Import the components ``kinds`` ("serverapp", "clientapp") of ``project_dir``."""
    project_dir = Path(project_dir).resolve()
    server_ref, client_ref = flower_components(project_dir)
    refs = {"serverapp": server_ref, "clientapp": client_ref}
    packages = {ref.split(":")[0].split(".")[0] for ref in refs.values()}
    with _lock:
        saved = {n: m for n, m in sys.modules.items() if _owned(n, packages)}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(project_dir))
        try:
            return {kind: _load(kind, refs[kind], project_dir) for kind in kinds}
        finally:
            sys.path.remove(str(project_dir))
            for name in [n for n in sys.modules if _owned(n, packages)]:
                del sys.modules[name]
            sys.modules.update(saved)


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
