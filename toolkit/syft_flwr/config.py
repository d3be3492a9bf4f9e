"""Configuration: a party's identity file and a project's ``[tool.syft_flwr]`` table."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from syft_flwr.network.atomic import atomic_write_json, read_json
from syft_flwr.network.layout import Network, validate_email, validate_name

CONFIG_ENV = "SYFTBOX_CLIENT_CONFIG_PATH"
#: The id of the approved job a process runs for (set by a data owner's job runner).
JOB_ID_ENV = "SYFT_FLWR_JOB_ID"
IDENTITY_VERSION = 1


@dataclass(frozen=True)
class Identity:
    """Who a party is and which network it is on; stored in the party's private folder.

    Its path is what a job receives as ``SYFTBOX_CLIENT_CONFIG_PATH``.
    """

    email: str
    network_root: Path
    path: Path

    @property
    def network(self) -> Network:
        return Network(self.network_root)

    @classmethod
    def write(cls, network: Network, email: str, *, durable: bool = True) -> Identity:
        """Write (or rewrite) the identity file of ``email`` on ``network``; other fields of an
        existing file are kept.

        This makes no keys: a new party is created with :func:`syft_flwr.crypto.create_party`,
        which gives it keys and then calls this.
        """
        validate_email(email)
        path = network.identity_path(email)
        existing = read_json(path) if path.exists() else {}
        existing.update(
            {"version": IDENTITY_VERSION, "email": email, "network_root": str(network.root)}
        )
        atomic_write_json(path, existing, durable=durable)
        return cls(email=email, network_root=network.root, path=path)

    @classmethod
    def load(cls, path: Path | str | None = None) -> Identity:
        """Load the identity at ``path``, or at ``$SYFTBOX_CLIENT_CONFIG_PATH``."""
        if path is None:
            path = os.environ.get(CONFIG_ENV)
            if not path:
                raise RuntimeError(
                    f"no identity given: pass --config PATH or set {CONFIG_ENV} to the party's "
                    "identity file (a data owner's job runner sets it for you)"
                )
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"identity file {path} does not exist: create this party's identity with "
                "syft_flwr.rds.setup_rds_server(email=..., root_dir=..., key=...) (its path is "
                f"then <server>.client.config_path), or set {CONFIG_ENV} (or pass --config) "
                "to an existing identity file"
            )
        try:
            data = read_json(path)
            return cls(
                email=validate_email(data["email"]),
                network_root=Path(data["network_root"]),
                path=path.resolve(),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"identity file {path} is malformed: {exc}") from exc


@dataclass(frozen=True)
class ProjectConfig:
    """The ``[tool.syft_flwr]`` table that :func:`syft_flwr.bootstrap` writes."""

    app_name: str
    aggregator: str
    datasites: tuple[str, ...]

    def role_of(self, email: str) -> str:
        """``"aggregator"`` or ``"datasite"``; ValueError for a party not in the project."""
        if email == self.aggregator:
            return "aggregator"
        if email in self.datasites:
            return "datasite"
        raise ValueError(
            f"{email} is neither the aggregator ({self.aggregator}) nor one of the datasites "
            f"({', '.join(self.datasites)}) of app {self.app_name!r}; bootstrap the project "
            "again with the right parties"
        )


def read_pyproject(project_dir: Path) -> dict:
    pyproject = Path(project_dir) / "pyproject.toml"
    if not pyproject.is_file():
        raise FileNotFoundError(
            f"{pyproject} not found: a Flower app has a pyproject.toml with "
            "[tool.flwr.app.components]"
        )
    with pyproject.open("rb") as fh:
        return tomllib.load(fh)


def load_project_config(project_dir: Path) -> ProjectConfig:
    """Read ``[tool.syft_flwr]``; a clear error if the project was not bootstrapped."""
    table = read_pyproject(project_dir).get("tool", {}).get("syft_flwr")
    if not table:
        raise ValueError(
            f"{project_dir} is not bootstrapped: run syft_flwr.bootstrap(project_dir, "
            "aggregator=..., datasites=[...]) first"
        )
    try:
        return ProjectConfig(
            app_name=validate_name(table["app_name"], "app_name"),
            aggregator=validate_email(table["aggregator"]),
            datasites=tuple(validate_email(e) for e in table["datasites"]),
        )
    except KeyError as exc:
        raise ValueError(f"[tool.syft_flwr] in {project_dir} lacks {exc}; bootstrap again") from exc


def flower_components(project_dir: Path) -> tuple[str, str]:
    """``(serverapp, clientapp)`` object references from ``[tool.flwr.app.components]``."""
    data = read_pyproject(project_dir)
    comps = data.get("tool", {}).get("flwr", {}).get("app", {}).get("components")
    if not comps or "serverapp" not in comps or "clientapp" not in comps:
        raise ValueError(
            f"{Path(project_dir) / 'pyproject.toml'} is not a Flower app: it needs "
            "[tool.flwr.app.components] with serverapp and clientapp"
        )
    return comps["serverapp"], comps["clientapp"]


def flower_run_config(project_dir: Path) -> dict:
    """``[tool.flwr.app.config]``, the app's run config defaults."""
    data = read_pyproject(project_dir)
    return dict(data.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {}))
