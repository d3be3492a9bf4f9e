"""The program inside the sandbox: ``python -m syft_flwr.sandbox.worker <project_dir>``.

It loads only the project's ClientApp, says so in its first frame, then answers each request
frame (:mod:`syft_flwr.sandbox.protocol`) with :func:`syft_flwr.transport.clientapp.answer`
until its stdin closes. Anything the app prints goes to stderr: stdout carries frames only.
A ``MemoryError`` or a file too large ends the worker (a fatal frame): a limit was reached.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import BinaryIO


def _protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Take stdin/stdout for frames; the app's ``print`` goes to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, out


def serve(project_dir: Path, requests: BinaryIO, replies: BinaryIO) -> int:
    from syft_flwr.sandbox.protocol import receive, send

    try:
        from syft_flwr.apps import load_client_app

        client_app = load_client_app(project_dir)
    except Exception as exc:  # noqa: BLE001 - reported to the trusted node, which raises it
        send(replies, {"ready": False, "error": str(exc)})
        return 1
    from flwr.app import Context, RecordDict

    from syft_flwr.transport.clientapp import answer

    send(replies, {"ready": True})
    contexts: dict[int, Context] = {}
    while True:
        request = receive(requests)
        if request is None or request[1] is None:
            return 0
        header, message = request
        run_id = int(header["run_id"])
        context = contexts.get(run_id)
        if context is None:
            context = contexts[run_id] = Context(
                run_id=run_id,
                node_id=int(header["node_id"]),
                node_config=dict(header["node_config"]),
                state=RecordDict(),
                run_config=dict(header["run_config"]),
            )
        data_path = context.node_config.get("data-path")
        reply, exc = answer(
            client_app,
            message,
            context,
            node_id=int(header["node_id"]),
            data_path=Path(data_path) if data_path else None,
            who="sandbox",
        )
        fatal = _limit_of(exc)
        if fatal is not None:
            error = f"{type(exc).__name__}: {exc}"
            send(replies, {"fatal": fatal, "error": error})
            return 1
        error = None if exc is None else {"type": type(exc).__qualname__, "message": str(exc)}
        send(replies, {"error": error}, reply)


def _limit_of(exc: BaseException | None) -> str | None:
    """The limit an exception of the app shows: "memory" (the address-space limit) or
    "output" (the file-size limit); None for any other exception."""
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "output"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m syft_flwr.sandbox.worker <project_dir>", file=sys.stderr)
        return 2
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    requests, replies = _protocol_streams()
    return serve(Path(argv[0]), requests, replies)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
