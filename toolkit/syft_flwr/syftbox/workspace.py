"""A SyftBox data folder as the toolkit's :class:`~syft_flwr.network.Network`.

A SyftBox client keeps every datasite it syncs in ``<data dir>/datasites/<email>/`` and syncs
nothing else, so the network's root is the data folder itself: ``datasites/`` is shared and
``private/<email>/`` (identity, keys, private data, job records) stays on the machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from syft_flwr.errors import UsageError
from syft_flwr.network import Network, validate_email, validate_name
from syft_flwr.network.atomic import TMP_PREFIX

if TYPE_CHECKING:
    from syft_flwr.rds.server import RDSServer

#: the SyftBox client's own configuration file, where ``syftbox client`` writes it by default
DEFAULT_CONFIG = Path("~/.syftbox/config.json")
#: what the client writes in ``datasites/`` on its first start: the sign of a SyftBox folder
IGNORE_FILE = "_.syftignore"
#: the toolkit's temporary files (written, then renamed) are never worth uploading
IGNORE_LINE = f"{TMP_PREFIX}*"


def is_syftbox(network: Network) -> bool:
    """Whether ``network`` is a SyftBox client's data folder."""
    return (network.datasites_dir / IGNORE_FILE).is_file()


@dataclass(frozen=True)
class SyftBoxWorkspace:
    """A SyftBox client's data folder and the email it syncs as."""

    data_dir: Path
    email: str

    def __post_init__(self) -> None:
        validate_email(self.email)
        validate_name(self.data_dir.name, "SyftBox data folder name")

    @classmethod
    def from_config(cls, config: Path | str | None = None) -> SyftBoxWorkspace:
        """Read ``data_dir`` and ``email`` from a SyftBox client's ``config.json``."""
        path = Path(config or DEFAULT_CONFIG).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(Path(data["data_dir"]).expanduser().resolve(), str(data["email"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"cannot read a SyftBox client configuration from {path} ({exc}): start "
                "`syftbox client` once (it writes the file) or pass config=<its path>"
            ) from exc

    @property
    def network(self) -> Network:
        return Network(self.data_dir.resolve())

    def check(self) -> None:
        """Raise :class:`UsageError` unless a SyftBox client has run in the data folder."""
        if not is_syftbox(self.network):
            raise UsageError(
                f"{self.data_dir} is not a SyftBox data folder (no datasites/{IGNORE_FILE}): "
                "start `syftbox client` with this data folder first"
            )
        self.ignore_temporary_files()

    def ignore_temporary_files(self) -> None:
        """Keep the toolkit's half-written temporary files out of the sync."""
        path = self.network.datasites_dir / IGNORE_FILE
        text = path.read_text(encoding="utf-8")
        if IGNORE_LINE not in text.splitlines():
            path.write_text(text.rstrip("\n") + f"\n\n# syft-flwr\n{IGNORE_LINE}\n")


def join_syftbox(
    config: Path | str | None = None,
    *,
    data_dir: Path | str | None = None,
    email: str | None = None,
) -> RDSServer:
    """Join the SyftBox network of an existing client as its user.

    Either ``config`` (the client's ``config.json``; default ``~/.syftbox/config.json``) or
    both ``data_dir`` and ``email``. Creates the party's identity and keys in
    ``<data dir>/private/<email>/`` (never synced) and its permission files.
    """
    from syft_flwr.rds import setup_rds_server

    if data_dir is not None and email is not None:
        workspace = SyftBoxWorkspace(Path(data_dir).expanduser().resolve(), email)
    elif data_dir is None and email is None:
        workspace = SyftBoxWorkspace.from_config(config)
    else:
        raise UsageError("give both data_dir and email, or neither (config.json is read)")
    workspace.check()
    folder = workspace.data_dir
    return setup_rds_server(email=workspace.email, root_dir=folder.parent, key=folder.name)
