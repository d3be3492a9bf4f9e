"""What every Grid of the toolkit shares: the Flower run it serves and how it makes messages."""

from __future__ import annotations

import secrets

from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid

from syft_flwr.transport import flwr_compat


class RunGrid(Grid):
    """A ``flwr.serverapp.Grid`` bound to one Flower run (a random id unless given), whose
    ``run_config`` is what the ServerApp's Context gets (:meth:`server_context`)."""

    def __init__(self, run_id: int | None = None, run_config: dict | None = None) -> None:
        self._run = flwr_compat.make_run(
            run_id if run_id is not None else secrets.randbits(62) + 1, run_config
        )
        flwr_compat.ensure_task_identity(self._run.run_id)

    def set_run(self, run: flwr_compat.Run) -> None:
        if not isinstance(run, flwr_compat.Run):
            raise TypeError(f"run must be a flwr Run, got {type(run).__name__}")
        self._run = run

    @property
    def run(self) -> flwr_compat.Run:
        return flwr_compat.Run(**vars(self._run))

    def server_context(self) -> Context:
        """A Context for the ServerApp of this run (run_config from the grid)."""
        return Context(
            run_id=self._run.run_id,
            node_id=flwr_compat.SUPERLINK_NODE_ID,
            node_config={},
            state=RecordDict(),
            run_config=dict(self._run.override_config),
        )

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)
