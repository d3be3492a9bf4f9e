"""Flower over datasites.

- :class:`DatasiteGrid` — the aggregator's ``flwr.serverapp.Grid``: one message file per
  datasite into its inbox, replies read from the aggregator's inbox, a :class:`RunReport`.
- :class:`DatasiteNode` — a datasite's loop: validates each file in its inbox, calls the
  ClientApp, writes the reply (or a Flower error reply), quarantines bad files.
- :class:`~syft_flwr.transport.endpoint.Endpoint` — one party's message files (keys, inbox,
  watch, quarantine, security log, settings): the one receive pipeline grid and node share.
- :class:`~syft_flwr.transport.pool.NodePool` — many nodes of one process on a few workers.
- :mod:`~syft_flwr.transport.codec` — the message file format (authenticated; bodies encrypted to
  the recipient by default, see :mod:`~syft_flwr.crypto.messages`).
- :mod:`~syft_flwr.transport.flwr_compat` — the only place that touches flwr internals.
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # before flwr is imported below

from syft_flwr.transport.codec import MessageFileError  # noqa: E402
from syft_flwr.transport.errors import KINDS as REFUSAL_KINDS  # noqa: E402
from syft_flwr.transport.grid import DatasiteGrid  # noqa: E402
from syft_flwr.transport.ids import node_id_for  # noqa: E402
from syft_flwr.transport.node import AppError, DatasiteNode, NodeResult  # noqa: E402
from syft_flwr.transport.report import (  # noqa: E402
    QuarantinedFile,
    ReplyError,
    RoundReport,
    RunReport,
)

__all__ = [
    "AppError",
    "DatasiteGrid",
    "DatasiteNode",
    "MessageFileError",
    "NodeResult",
    "QuarantinedFile",
    "REFUSAL_KINDS",
    "ReplyError",
    "RoundReport",
    "RunReport",
    "node_id_for",
]
