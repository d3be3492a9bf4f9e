"""Who a party is (:class:`RDSClient`) and the check that only a datasite's owner may act."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syft_flwr.config import Identity
from syft_flwr.network.layout import Network


@dataclass(frozen=True)
class RDSClient:
    """Who this party is: its email, its network and its identity file."""

    email: str
    network: Network
    identity: Identity

    @property
    def config_path(self) -> Path:
        """The identity file (what jobs receive as ``SYFTBOX_CLIENT_CONFIG_PATH``)."""
        return self.identity.path

    @property
    def datasite_path(self) -> Path:
        return self.network.datasite(self.email)

    @property
    def private_path(self) -> Path:
        return self.network.private_dir(self.email)

    def owns(self, host: str) -> bool:
        """True if ``host``'s datasite is this party's own (its sessions there are admin)."""
        return self.email == host


def owner_only(host: str, you: str, action: str) -> PermissionError:
    """The error for a guest (``you``) asking to ``action`` on ``host``'s datasite (a plain
    PermissionError, which is what a guest's code catches)."""
    return PermissionError(
        f"only the owner of the datasite, {host}, can {action}; you are {you} (a guest). "
        f"Ask {host} to do it"
    )
