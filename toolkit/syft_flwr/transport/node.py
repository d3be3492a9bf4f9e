"""The datasite's side: a loop that feeds messages from its inbox to a ClientApp."""

from __future__ import annotations

import fcntl
import gc
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from loguru import logger

from syft_flwr.network import DirectoryWatcher, Network, validate_email, validate_name
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.codec import (
    FILE_SUFFIX,
    KIND_STOP,
    ChecksumCache,
    MessageFileError,
    decode_message,
    encode_message,
    read_envelope,
    read_segments,
)
from syft_flwr.transport.ids import is_message_id, new_message_id, node_id_for
from syft_flwr.transport.inbox import list_inbox, private_app_dir, quarantine, write_message
from syft_flwr.transport.report import QuarantinedFile
from syft_flwr.transport.settings import (
    COLLECT_AFTER_BYTES,
    COLLECT_NOW_BYTES,
    DEFAULT_IDLE_TIMEOUT,
    IDLE_TIMEOUT_ENV,
    QUIET_BEFORE_COLLECT,
    RESCAN_INTERVAL,
    resolve_max_bytes,
    resolve_seconds,
)
from syft_flwr.utils import dataset_path_context

#: a stop message written this long before the node started belongs to an earlier run
STALE_STOP_SECONDS = 60.0


@dataclass(frozen=True)
class AppError:
    message_id: str
    exception_type: str
    message: str


@dataclass
class NodeResult:
    """Why :meth:`DatasiteNode.serve` returned and what it did."""

    reason: str  # "stop-message" | "idle-timeout" | "stopped"
    answered: int = 0
    app_errors: list[AppError] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Served until the aggregator said stop, and the app never raised."""
        return self.reason == "stop-message" and not self.app_errors


class _AnsweredLog:
    """Ids of messages already answered (one per line), so a restarted node never answers
    a message twice."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.ids: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if is_message_id(line.strip()):
                    self.ids.add(line.strip())
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.ids

    def add(self, message_id: str) -> None:
        self.ids.add(message_id)
        os.write(self._fd, (message_id + "\n").encode("ascii"))  # O_APPEND: one atomic line

    def close(self) -> None:
        os.close(self._fd)


class DatasiteNode:
    """Serves one Flower ClientApp for one datasite: inbox files in, reply files out.

    The ClientApp is called with a Context whose ``node_config`` holds ``data-path`` (plus
    ``node_config``), inside :func:`syft_flwr.utils.dataset_path_context` so that
    ``get_syftbox_dataset_path()`` works in the serving thread. If it raises, the node
    replies at once with a Flower error reply (exception type and message) and keeps
    serving. Files that fail validation are moved to
    ``private/<email>/flwr/<app>/quarantine/``.
    """

    def __init__(
        self,
        network: Network,
        app_name: str,
        email: str,
        aggregator: str,
        client_app: ClientApp,
        *,
        data_path: Path,
        node_config: dict | None = None,
        run_config: dict | None = None,
        idle_timeout: float | None = None,
        max_message_bytes: int | None = None,
    ) -> None:
        self.network = network
        self.app_name = validate_name(app_name, "app name")
        self.email = validate_email(email)
        self.aggregator = validate_email(aggregator)
        if not callable(client_app):
            raise TypeError(f"client_app must be a flwr ClientApp, got {type(client_app).__name__}")
        self.client_app = client_app
        self.data_path = Path(data_path)
        self.node_config = {**(node_config or {}), "data-path": str(self.data_path)}
        self.run_config = dict(run_config or {})
        self.idle_timeout = resolve_seconds(
            idle_timeout, IDLE_TIMEOUT_ENV, DEFAULT_IDLE_TIMEOUT, "idle timeout"
        )
        self.max_message_bytes = resolve_max_bytes(max_message_bytes)
        self.node_id = node_id_for(self.email)
        self.inbox = network.flwr_inbox(self.email, self.app_name)
        self.aggregator_inbox = network.flwr_inbox(self.aggregator, self.app_name)
        self.private_dir = private_app_dir(network, self.email, self.app_name)
        self.quarantine_dir = self.private_dir / "quarantine"
        self._contexts: dict[int, Context] = {}
        self._stop = threading.Event()
        self._watcher: DirectoryWatcher | None = None
        self._serving = threading.Lock()
        self._garbage = 0  # bytes of messages handled since the last garbage collection

    def stop(self) -> None:
        """Make :meth:`serve` return (callable from any thread)."""
        self._stop.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.notify()

    def serve(self) -> NodeResult:
        """Answer messages until a stop message, :meth:`stop` or the idle timeout."""
        if not self._serving.acquire(blocking=False):
            raise RuntimeError(f"{self.email}'s node for {self.app_name} is already serving")
        self.private_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.private_dir / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(
                    f"another node is already serving {self.email}'s inbox for app "
                    f"{self.app_name}; stop it first"
                ) from None
            self._watcher = DirectoryWatcher(self.inbox)
            answered = _AnsweredLog(self.private_dir / "answered.log")
            try:
                if self._stop.is_set():
                    return NodeResult("stopped")
                return self._loop(answered)
            finally:
                answered.close()
                self._watcher.close()
                self._watcher = None
        finally:
            os.close(lock_fd)  # releases the flock
            self._serving.release()

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self, answered: _AnsweredLog) -> NodeResult:
        result = NodeResult("stopped")
        started = time.time()
        last_activity = time.monotonic()
        logger.info(f"{self.email}: serving app {self.app_name} from {self.inbox}")
        assert self._watcher is not None
        while not self._stop.is_set():
            for path in list_inbox(self.inbox):
                if self._stop.is_set():
                    break
                outcome = self._handle(path, answered, result, started)
                last_activity = time.monotonic()
                if outcome == "stop":
                    result.reason = "stop-message"
                    logger.info(f"{self.email}: stop message received; {self._summary(result)}")
                    return result
            if self._garbage >= COLLECT_AFTER_BYTES:
                if self._garbage < COLLECT_NOW_BYTES and self._watcher.wait(
                    timeout=QUIET_BEFORE_COLLECT
                ):
                    continue  # another message: serve it first, collect when quiet
                gc.collect()  # see settings.COLLECT_AFTER_BYTES
                self._garbage = 0
                continue
            idle = time.monotonic() - last_activity
            if idle >= self.idle_timeout:
                result.reason = "idle-timeout"
                logger.info(
                    f"{self.email}: no message for {self.idle_timeout:g} s "
                    f"(idle timeout, {IDLE_TIMEOUT_ENV}); stopping; {self._summary(result)}"
                )
                return result
            self._watcher.wait(timeout=min(self.idle_timeout - idle, RESCAN_INTERVAL))
        logger.info(f"{self.email}: stopped; {self._summary(result)}")
        return result

    def _summary(self, result: NodeResult) -> str:
        return (
            f"answered {result.answered}, app errors {len(result.app_errors)}, "
            f"quarantined {len(result.quarantined)}"
        )

    def _handle(
        self, path: Path, answered: _AnsweredLog, result: NodeResult, started: float
    ) -> str:
        if not path.name.endswith(FILE_SUFFIX):
            return self._quarantine(path, "unexpected file name (not a message file)", result)
        cache: ChecksumCache = {}  # checksums of the request's arrays, for the reply
        try:
            with open(path, "rb") as f:
                envelope = read_envelope(
                    f,
                    path.name,
                    recipient=self.email,
                    app_name=self.app_name,
                    senders=(self.aggregator,),
                    max_bytes=self.max_message_bytes,
                )
                if envelope.kind == KIND_STOP:
                    path.unlink(missing_ok=True)
                    if envelope.created_at < started - STALE_STOP_SECONDS:
                        logger.info(f"{self.email}: ignoring a stop message from an earlier run")
                        return "skipped"
                    return "stop"
                if envelope.reply_to:
                    raise MessageFileError("a datasite takes instructions, not replies")
                if envelope.message_id in answered:
                    logger.info(
                        f"{self.email}: message {envelope.message_id} was already answered; "
                        "removing it"
                    )
                    path.unlink(missing_ok=True)
                    return "skipped"
                segments = read_segments(f, envelope, cache)
            message = decode_message(envelope, segments)
            del segments
            self._check_instruction(message)
        except FileNotFoundError:
            return "skipped"
        except MessageFileError as exc:
            return self._quarantine(path, exc.reason, result)

        reply = self._call_app(message, result)
        try:
            encoded = encode_message(
                reply,
                sender=self.email,
                recipient=self.aggregator,
                app_name=self.app_name,
                max_bytes=self.max_message_bytes,
                checksum_cache=cache,
            )
        except Exception as exc:  # unsupported record, too large
            logger.exception(f"{self.email}: could not encode the reply")
            reply = self._error_reply(message, exc, result)
            encoded = encode_message(
                reply,
                sender=self.email,
                recipient=self.aggregator,
                app_name=self.app_name,
                max_bytes=self.max_message_bytes,
            )
        try:
            write_message(self.aggregator_inbox, encoded)
        except OSError as exc:
            logger.error(
                f"{self.email}: could not write the reply to {message.metadata.message_id}: {exc}"
            )
            path.unlink(missing_ok=True)
            return "failed"
        answered.add(message.metadata.message_id)
        path.unlink(missing_ok=True)
        result.answered += 1
        self._garbage += envelope.body_length + encoded.size
        return "answered"

    def _check_instruction(self, message: Message) -> None:
        md = message.metadata
        if md.dst_node_id != self.node_id:
            raise MessageFileError(
                f"addressed to node {md.dst_node_id}, this datasite is node {self.node_id}"
            )
        if md.ttl <= 0 or md.created_at + md.ttl < time.time():
            raise MessageFileError(f"expired (created {md.created_at:.0f}, ttl {md.ttl:g} s)")

    def _context(self, run_id: int) -> Context:
        context = self._contexts.get(run_id)
        if context is None:
            context = Context(
                run_id=run_id,
                node_id=self.node_id,
                node_config=dict(self.node_config),
                state=RecordDict(),
                run_config=dict(self.run_config),
            )
            self._contexts[run_id] = context
        return context

    def _call_app(self, message: Message, result: NodeResult) -> Message:
        context = self._context(message.metadata.run_id)
        try:
            with dataset_path_context(self.data_path):
                reply = self.client_app(message, context)
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
                f"{self.email}: the ClientApp raised {type(exc).__name__}: {exc}\n"
                + "".join(traceback.format_exception(exc))
            )
            return self._error_reply(message, exc, result)
        flwr_compat.set_message_id(reply, new_message_id())
        flwr_compat.set_route(reply, run_id=message.metadata.run_id, src_node_id=self.node_id)
        return reply

    def _error_reply(self, message: Message, exc: BaseException, result: NodeResult) -> Message:
        kind = type(exc).__qualname__
        result.app_errors.append(AppError(message.metadata.message_id, kind, str(exc)))
        reply = Message(
            Error(code=flwr_compat.CLIENT_APP_RAISED_EXCEPTION, reason=f"{kind}: {exc}"),
            reply_to=message,
        )
        flwr_compat.set_message_id(reply, new_message_id())
        flwr_compat.set_route(reply, run_id=message.metadata.run_id, src_node_id=self.node_id)
        return reply

    def _quarantine(self, path: Path, reason: str, result: NodeResult) -> str:
        target = quarantine(path, self.quarantine_dir, reason)
        if target is not None:
            result.quarantined.append(QuarantinedFile(str(target), reason))
        return "quarantined"
