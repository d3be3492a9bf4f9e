"""The toolkit over a real SyftBox network: each party a SyftBox client with its own data folder.

``workspace`` maps a SyftBox data folder onto a :class:`~syft_flwr.network.Network`,
``permissions`` writes the ``syftperm.yaml`` files the server enforces, ``env`` finds the
SyftBox programs (their own virtual environment) and ``cluster`` runs a server and clients on
loopback for the demo, the tests and the benchmark.
"""

from syft_flwr.syftbox.env import SyftBoxUnavailable, syftbox_bin
from syft_flwr.syftbox.workspace import (
    SyftBoxWorkspace,
    is_syftbox,
    join_syftbox,
)

__all__ = ["SyftBoxUnavailable", "SyftBoxWorkspace", "is_syftbox", "join_syftbox", "syftbox_bin"]
