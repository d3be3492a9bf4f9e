"""A Flower ``Grid`` whose datasites are ClientApps in this process: no files, no keys.

:class:`LoopbackGrid` hands each message straight to the ClientApp of its node, on the
calling thread, as a datasite's node would (the same Context, data path and error reply:
:mod:`syft_flwr.transport.clientapp`), and both ways through Flower's own protobuf serde,
so neither side shares an object with the other. It is for driving a ServerApp against
real ClientApps where the transport is not what is being looked at: an app's own tests, a
notebook check of an aggregation. :class:`~syft_flwr.transport.grid.DatasiteGrid` is the
real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, RecordDict

from syft_flwr.transport import flwr_compat
from syft_flwr.transport.clientapp import answer
from syft_flwr.transport.ids import new_message_id
from syft_flwr.transport.run_grid import RunGrid


def _over_the_wire(message: Message) -> Message:
    return flwr_compat.message_from_bytes(flwr_compat.message_to_bytes(message))


class LoopbackGrid(RunGrid):
    """Serves ``client_app`` for each node of ``datasites`` (node id -> its data folder, or
    None for a node without one) in this process.

    ``node_configs`` adds to a node's ``node_config`` (which holds ``data-path``);
    ``run_config`` is every node's. ``drop`` (called with each message before it is
    delivered) returning True makes that node stay silent; raising from it stops the
    ServerApp there. What happened is kept: ``delivered`` (every message a node received),
    ``replies`` (every reply it sent), ``raised`` (node id -> what its ClientApp raised) and
    ``received`` (messages per node).
    """

    def __init__(
        self,
        client_app: Any,
        datasites: Mapping[int, Path | None],
        *,
        run_config: Mapping[str, Any] | None = None,
        node_configs: Mapping[int, Mapping[str, Any]] | None = None,
        drop: Callable[[Message], bool] | None = None,
        run_id: int | None = None,
    ) -> None:
        self.client_app = client_app
        self.datasites = dict(datasites)
        self.run_config = dict(run_config or {})
        self.drop = drop
        super().__init__(run_id, self.run_config)
        self.contexts = {
            node_id: Context(
                run_id=self._run.run_id,
                node_id=node_id,
                node_config={
                    **({"data-path": str(path)} if path is not None else {}),
                    **dict((node_configs or {}).get(node_id, {})),
                },
                state=RecordDict(),
                run_config=dict(self.run_config),
            )
            for node_id, path in self.datasites.items()
        }
        self._replies: dict[str, Message] = {}
        self.delivered: list[Message] = []
        self.replies: list[Message] = []
        self.raised: dict[int, BaseException] = {}
        self.received: dict[int, int] = dict.fromkeys(self.datasites, 0)

    # -- flwr Grid API -----------------------------------------------------------------------
    def get_node_ids(self) -> Iterable[int]:
        return list(self.datasites)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            node_id = message.metadata.dst_node_id
            if node_id not in self.datasites:
                raise ValueError(f"message for unknown node {node_id}; nodes: {self.datasites}")
            message_id = new_message_id()
            flwr_compat.set_message_id(message, message_id)
            flwr_compat.set_route(
                message, run_id=self._run.run_id, src_node_id=flwr_compat.SUPERLINK_NODE_ID
            )
            ids.append(message_id)
            if self.drop is not None and self.drop(message):
                continue
            reply = self.serve(_over_the_wire(message))
            self._replies[message_id] = _over_the_wire(reply)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return list(self.pull_messages(self.push_messages(messages)))

    # -- a node ------------------------------------------------------------------------------
    def serve(self, message: Message) -> Message:
        """What node ``message.metadata.dst_node_id`` answers (its ClientApp's reply, or an
        error reply if the app raised)."""
        node_id = message.metadata.dst_node_id
        self.received[node_id] += 1
        self.delivered.append(message)
        reply, raised = answer(
            self.client_app,
            message,
            self.contexts[node_id],
            node_id=node_id,
            data_path=self.datasites[node_id],
            who=f"node {node_id}",
        )
        if raised is not None:
            self.raised[node_id] = raised
        self.replies.append(reply)
        return reply
