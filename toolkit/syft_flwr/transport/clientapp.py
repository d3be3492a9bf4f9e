"""Calling a ClientApp for one message, as Flower's SuperNode does: the one place where a
datasite's reply (or the error reply for an app that raised) is made."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from flwr.app import Context, Error, Message
from loguru import logger

from syft_flwr.transport import flwr_compat
from syft_flwr.transport.ids import new_message_id
from syft_flwr.utils import dataset_path_context


def answer(
    client_app: Any,
    message: Message,
    context: Context,
    *,
    node_id: int,
    data_path: Path | None,
    who: str = "datasite",
) -> tuple[Message, Exception | None]:
    """The reply of ``client_app`` to ``message`` and None; or, if the app raised (or
    returned something that is not a reply to ``message``), an error reply carrying the
    exception's type and message, and the exception. ``data_path`` is what
    ``get_syftbox_dataset_path()`` returns inside the app (None: no data path). The reply
    gets a new message id and this node's route."""
    try:
        if data_path is None:
            reply = client_app(message, context)
        else:
            with dataset_path_context(data_path):
                reply = client_app(message, context)
        if not isinstance(reply, Message):
            raise TypeError(
                f"the ClientApp returned {type(reply).__name__}; it must return "
                "Message(content, reply_to=message)"
            )
        if reply.metadata.reply_to_message_id != message.metadata.message_id:
            raise TypeError(
                "the ClientApp returned a message that is not a reply to the one it "
                "received; return Message(content, reply_to=message)"
            )
    except Exception as exc:
        logger.error(
            f"{who}: the ClientApp raised {type(exc).__name__}: {exc}\n"
            + "".join(traceback.format_exception(exc))
        )
        return error_reply(message, exc, node_id=node_id), exc
    route(reply, message, node_id)
    return reply, None


def error_reply(message: Message, exc: BaseException, *, node_id: int) -> Message:
    """A Flower error reply to ``message`` saying that the ClientApp raised ``exc``."""
    reason = f"{type(exc).__qualname__}: {exc}"
    reply = Message(
        Error(code=flwr_compat.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message
    )
    route(reply, message, node_id)
    return reply


def route(reply: Message, message: Message, node_id: int) -> None:
    """Give ``reply`` a new id, ``message``'s run and this node as its source."""
    flwr_compat.set_message_id(reply, new_message_id())
    flwr_compat.set_route(reply, run_id=message.metadata.run_id, src_node_id=node_id)
