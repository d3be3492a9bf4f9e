"""Every contact with flwr's private or unexported names, in one place.

flwr is pinned exactly (see pyproject.toml). The transport needs a few things flwr only
offers to its own runtimes: setting a message's id and sender node id, building a message
from raw metadata, the protobuf serde, the ``Run`` record a Grid holds, the identity
that ``Message(...)`` reads to fill in ``run_id``/``src_node_id``, and the parser of
``--run-config`` strings (``flwr.common.config``), and the simulation engine's runner with
an app's run config (for comparisons). When flwr is upgraded,
``tests/transport/test_flwr_compat.py`` checks each of these still exists and behaves; fix
this module, nowhere else.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import flwr
from flwr.app import Message, Metadata
from flwr.app.message import make_message as _make_message
from flwr.common.constant import SUPERLINK_NODE_ID as _SUPERLINK_NODE_ID
from flwr.common.constant import ErrorCode as _ErrorCode
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

FLWR_VERSION_TESTED = "1.41.0"
FLWR_VERSION = flwr.__version__ if hasattr(flwr, "__version__") else "unknown"

#: node id flwr uses for the SuperLink, i.e. the sender of instructions / the ServerApp side
SUPERLINK_NODE_ID: int = int(_SUPERLINK_NODE_ID)
#: flwr's error code for "the ClientApp raised an exception"
CLIENT_APP_RAISED_EXCEPTION: int = int(_ErrorCode.CLIENT_APP_RAISED_EXCEPTION)
#: flwr's error code for an error of unknown origin
UNKNOWN_ERROR: int = int(_ErrorCode.UNKNOWN)

__all__ = [
    "CLIENT_APP_RAISED_EXCEPTION",
    "FLWR_VERSION",
    "FLWR_VERSION_TESTED",
    "SUPERLINK_NODE_ID",
    "UNKNOWN_ERROR",
    "Run",
    "ensure_task_identity",
    "make_message",
    "make_run",
    "message_from_bytes",
    "message_to_bytes",
    "parse_config_args",
    "set_message_id",
    "set_route",
]

_identity_lock = threading.Lock()


def ensure_task_identity(run_id: int) -> None:
    """Give flwr's process-wide ``TaskIdentity`` values if nobody has.

    ``Message(content, dst_node_id, message_type)`` (what strategies call) reads
    ``TaskIdentity.run_id``/``node_id``/``task_id`` and raises when they are unset, which is
    the case outside flwr's own runtimes. The values only seed the metadata: the grid
    overwrites ``run_id`` and ``src_node_id`` of every message it pushes, so several grids
    (two simulations in one process) can share whatever was set first. Never overrides
    values set by a real flwr runtime.
    """
    with _identity_lock:
        if TaskIdentity._run_id is None:  # noqa: SLF001 - see module docstring
            TaskIdentity.run_id = int(run_id)
        if TaskIdentity._node_id is None:  # noqa: SLF001
            TaskIdentity.node_id = SUPERLINK_NODE_ID
        if TaskIdentity._task_id is None:  # noqa: SLF001
            TaskIdentity.task_id = 1


def set_message_id(message: Message, message_id: str) -> None:
    """Set ``message.metadata.message_id`` (flwr lets only its SuperLink do this)."""
    message.metadata.__dict__["_message_id"] = message_id


def set_route(message: Message, *, run_id: int, src_node_id: int) -> None:
    """Set the run and sender node of a message (read-only properties in flwr)."""
    message.metadata.__dict__["_run_id"] = int(run_id)
    message.metadata.__dict__["_src_node_id"] = int(src_node_id)


def make_message(metadata: Metadata, content: Any = None, error: Any = None) -> Message:
    """Build a message from complete metadata (flwr's internal constructor path)."""
    return _make_message(metadata=metadata, content=content, error=error)


def make_run(run_id: int, run_config: dict | None = None) -> Run:
    """A ``Run`` record for a grid (flwr's runtimes get it from the SuperLink)."""
    run = Run.create_empty(int(run_id))
    run.override_config = dict(run_config or {})
    return run


def message_to_bytes(message: Message) -> bytes:
    """Serialize a message with flwr's protobuf serde."""
    return message_to_proto(message).SerializeToString()


def message_from_bytes(data: bytes | memoryview) -> Message:
    """Parse bytes written by :func:`message_to_bytes` (raises on malformed input)."""
    return message_from_proto(ProtoMessage.FromString(data))


def parse_config_args(lines: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings the way ``flwr run --run-config`` does (values are TOML:
    ``3``, ``0.1``, ``true``, ``'text'``). Raises ValueError on a malformed string (flwr
    raises ``click.ClickException``, which callers should not need to know about)."""
    from flwr.common.config import parse_config_args as _parse  # loaded only when needed

    try:
        return dict(_parse(list(lines)))
    except Exception as exc:  # click.ClickException for values that are not TOML
        raise ValueError(getattr(exc, "message", None) or str(exc)) from exc


def run_flower_simulation(
    app_dir: str | Path, server_app: Any, client_app: Any, *, num_supernodes: int
) -> None:
    """Run an app through Flower's own simulation engine (Ray) as ``flwr run`` does for a
    local simulation: the apps get the run config of ``app_dir``'s pyproject.toml (flwr's
    public ``run_simulation`` gives them an empty one). Needs ``flwr[simulation]``."""
    from flwr.app import Context, RecordDict
    from flwr.common.config import get_fused_config_from_dir
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.telemetry import EventType

    config = get_fused_config_from_dir(Path(app_dir), {})
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=config)
    _run_simulation(
        num_supernodes=num_supernodes,
        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
        client_app=client_app,
        server_app=server_app,
        backend_name="ray",
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
        server_app_context=context,
        app_dir=str(app_dir),
        is_app=True,  # the nodes read their run config from the app's folder
    )
