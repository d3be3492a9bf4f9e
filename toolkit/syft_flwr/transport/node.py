"""The datasite's side: a loop that hands the messages of its endpoint to a ClientApp.

A node serves either on a thread of its own (:meth:`DatasiteNode.serve`: a data owner's
job) or from a worker pool that serves many nodes of one process
(:class:`~syft_flwr.transport.pool.NodePool`: a simulation); either way each file goes
through :meth:`DatasiteNode.drain`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from loguru import logger

from syft_flwr.network import LineLog, Network, file_lock, validate_email
from syft_flwr.transport.clientapp import answer, error_reply
from syft_flwr.transport.codec import KIND_STOP, ChecksumCache, Envelope, MessageFileError
from syft_flwr.transport.codec import check_freshness as _check_freshness
from syft_flwr.transport.endpoint import Endpoint, Received
from syft_flwr.transport.grid import server_round
from syft_flwr.transport.ids import is_message_id, node_id_for
from syft_flwr.transport.inbox import remove
from syft_flwr.transport.report import QuarantinedFile, count_refusals
from syft_flwr.transport.settings import (
    COLLECT_AFTER_BYTES,
    COLLECT_NOW_BYTES,
    IDLE_TIMEOUT_ENV,
    QUIET_BEFORE_COLLECT,
    TransportSettings,
    collect_garbage,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from syft_flwr.monitor.heartbeat import Heartbeat

#: a stop message written this long before the node started belongs to an earlier run
STALE_STOP_SECONDS = 60.0


@dataclass(frozen=True)
class AppError:
    message_id: str
    exception_type: str
    message: str


@dataclass
class NodeResult:
    """Why a node stopped serving and what it did."""

    reason: str  # "stop-message" | "idle-timeout" | "stopped"
    answered: int = 0
    app_errors: list[AppError] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)  # replies that could not be written

    @property
    def ok(self) -> bool:
        """Served until the aggregator said stop, the app never raised, every reply left."""
        return self.reason == "stop-message" and not self.app_errors and not self.undelivered

    @property
    def refusals(self) -> dict[str, int]:
        """Refused (quarantined) files by kind, e.g. ``{"bad-mac": 1}``."""
        return count_refusals(self.quarantined)


class _Answered:
    """Ids of messages already answered (``answered.log``, one per line, kept open while the
    node serves), so a restarted node never answers a message twice."""

    def __init__(self, path: Path):
        self._log = LineLog(path)
        self.ids = {line.strip() for line in self._log.lines() if is_message_id(line.strip())}

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.ids

    def add(self, message_id: str) -> None:
        self.ids.add(message_id)
        self._log.append(message_id)  # one O_APPEND write: one whole line

    def close(self) -> None:
        self._log.close()


class DatasiteNode:
    """Serves one Flower ClientApp for one datasite: inbox files in, reply files out.

    The ClientApp is called with a Context whose ``node_config`` holds ``data-path`` (plus
    ``node_config``), inside :func:`syft_flwr.utils.dataset_path_context` so that
    ``get_syftbox_dataset_path()`` works wherever it runs. If it raises, the node replies at
    once with a Flower error reply (exception type and message) and keeps serving.

    A message is accepted only from ``aggregator`` (the one named in the project it serves),
    written by it (the file's MAC), addressed to this datasite and app, fresh
    (``message_ttl``, default ``$SYFT_FLWR_MESSAGE_TTL`` or 600 s) and never answered before.
    Any other file is refused: moved to ``private/<email>/flwr/<app>/quarantine/`` with the
    reason, appended to ``private/<email>/flwr/<app>/security.jsonl``, and counted in the
    :class:`NodeResult`. Replies are encrypted to the aggregator when ``encrypt`` (default
    ``$SYFT_FLWR_ENCRYPT`` or on) or when the request was. With a ``heartbeat``, the node
    tells it which app and round it is serving. ``settings`` (read from the environment
    when not given) holds the defaults the keywords override.
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
        encrypt: bool | None = None,
        message_ttl: float | None = None,
        heartbeat: Heartbeat | None = None,
        settings: TransportSettings | None = None,
    ) -> None:
        if not callable(client_app):
            raise TypeError(f"client_app must be a flwr ClientApp, got {type(client_app).__name__}")
        self.settings = (settings or TransportSettings.from_env()).but(
            idle_timeout=idle_timeout,
            max_message_bytes=max_message_bytes,
            encrypt=encrypt,
            message_ttl=message_ttl,
        )
        self.endpoint = Endpoint(
            network, email, app_name, settings=self.settings, on_refused=self._refused
        )
        self.network = network
        self.app_name = self.endpoint.app_name
        self.email = self.endpoint.email
        self.aggregator = validate_email(aggregator)
        self._senders = (self.aggregator,)
        self.client_app = client_app
        self.data_path = Path(data_path)
        self.node_config = {**(node_config or {}), "data-path": str(self.data_path)}
        self.run_config = dict(run_config or {})
        self.heartbeat = heartbeat
        self._beat_key: tuple[str, int | None] | None = None
        self.node_id = node_id_for(self.email)
        self.inbox = self.endpoint.inbox
        self.private_dir = self.endpoint.private_dir
        self.quarantine_dir = self.endpoint.quarantine_dir
        self.security_log = self.endpoint.security_log
        self._contexts: dict[int, Context] = {}
        self._stop = threading.Event()
        self._serving = threading.Lock()
        self._held: contextlib.ExitStack | None = None
        self._answered: _Answered | None = None
        self._started = 0.0
        self._garbage = 0  # bytes of messages handled since the last garbage collection
        self.result = NodeResult("stopped")

    @property
    def idle_timeout(self) -> float:
        return self.settings.idle_timeout

    # -- opening and closing ---------------------------------------------------------------
    def open(self, on_arrival: Callable[[], None] | None = None) -> None:
        """Take the inbox: the node lock (one server per inbox, across processes), the
        answered log, and the endpoint's watch (``on_arrival`` for a pool)."""
        if not self._serving.acquire(blocking=False):
            raise RuntimeError(f"{self.email}'s node for {self.app_name} is already serving")
        held = contextlib.ExitStack()
        try:
            self.private_dir.mkdir(parents=True, exist_ok=True)
            try:
                lock = self.network.node_lock(self.email, self.app_name)
                held.enter_context(file_lock(lock, blocking=False))
            except BlockingIOError:
                raise RuntimeError(
                    f"another node is already serving {self.email}'s inbox for app "
                    f"{self.app_name}; stop it first"
                ) from None
            self._answered = held.enter_context(
                contextlib.closing(_Answered(self.network.answered_log(self.email, self.app_name)))
            )
            self.endpoint._on_arrival = on_arrival
            self.endpoint.open()
            held.callback(self.endpoint.close)
        except BaseException:
            held.close()
            self._serving.release()
            raise
        self._held = held
        self.result = NodeResult("stopped")
        self._started = time.time()

    def close(self) -> NodeResult:
        """Give the inbox back; returns the result of this serving."""
        held, self._held = self._held, None
        if held is not None:
            held.close()
            self._serving.release()
        return self.result

    def stop(self) -> None:
        """Make :meth:`serve` return (callable from any thread)."""
        self._stop.set()
        self.endpoint.notify()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # -- serving on a thread of its own -----------------------------------------------------
    def serve(self) -> NodeResult:
        """Answer messages until a stop message, :meth:`stop` or the idle timeout."""
        self.open()
        try:
            if self._stop.is_set():
                return self.result
            logger.info(f"{self.email}: serving app {self.app_name} from {self.inbox}")
            return self._loop()
        finally:
            self.close()

    def _loop(self) -> NodeResult:
        result = self.result
        last_activity = time.monotonic()
        idle_timeout = self.settings.idle_timeout
        while not self._stop.is_set():
            if self.drain():
                last_activity = time.monotonic()
                if result.reason == "stop-message":
                    logger.info(f"{self.email}: stop message received; {self._summary(result)}")
                    return result
            if self._garbage >= COLLECT_AFTER_BYTES:
                if self._garbage < COLLECT_NOW_BYTES and self.endpoint.wait(QUIET_BEFORE_COLLECT):
                    continue  # another message: serve it first, collect when quiet
                collect_garbage()  # see settings.COLLECT_AFTER_BYTES
                self._garbage = 0
                continue
            idle = time.monotonic() - last_activity
            if idle >= idle_timeout:
                result.reason = "idle-timeout"
                logger.info(
                    f"{self.email}: no message for {idle_timeout:g} s "
                    f"(idle timeout, {IDLE_TIMEOUT_ENV}); stopping; {self._summary(result)}"
                )
                return result
            self.endpoint.wait(idle_timeout - idle)
        logger.info(f"{self.email}: stopped; {self._summary(result)}")
        return result

    # -- the one step both ways of serving take ----------------------------------------------
    def drain(self) -> bool:
        """Handle every file that is in the inbox now; True if there was any. After a stop
        message, ``self.result.reason`` is "stop-message" and the rest is left."""
        handled = False
        for entry in self.endpoint.files():
            if self._stop.is_set():
                break
            handled = True
            if self._handle(entry) == "stop":
                self.result.reason = "stop-message"
                break
        return handled

    def _summary(self, result: NodeResult) -> str:
        return (
            f"answered {result.answered}, app errors {len(result.app_errors)}, "
            f"quarantined {len(result.quarantined)}"
        )

    def _refused(self, refused: QuarantinedFile) -> None:
        self.result.quarantined.append(refused)

    def _screen(self, envelope: Envelope, f: BinaryIO) -> str | None:
        """A datasite's checks of an authenticated header: stop messages are taken here."""
        if envelope.kind == KIND_STOP and envelope.created_at < (
            self._started - STALE_STOP_SECONDS
        ):
            logger.info(f"{self.email}: ignoring a stop message from an earlier run")
            return "skipped"
        _check_freshness(envelope, ttl=self.settings.message_ttl)
        if envelope.reply_to:
            raise MessageFileError(
                "a datasite takes instructions, not replies",
                kind="unexpected",
                sender=envelope.sender,
            )
        assert self._answered is not None
        if envelope.message_id in self._answered:
            raise MessageFileError(
                f"replay: message {envelope.message_id} was already answered",
                kind="replay",
                sender=envelope.sender,
            )
        if envelope.kind == KIND_STOP:
            self._answered.add(envelope.message_id)  # a copy of it never stops a new node
            return "stop"
        return None

    def _handle(self, entry) -> str:  # noqa: ANN001 - a DirEntry or an InboxFile
        cache: ChecksumCache = {}  # checksums of the request's arrays, for the reply
        got = self.endpoint.receive(
            entry,
            senders=self._senders,
            screen=self._screen,
            checksum_cache=cache,
            check=self._check_instruction,
        )
        if not isinstance(got, Received):
            return got or "skipped"
        return self._answer(got, cache)

    def _answer(self, got: Received, cache: ChecksumCache) -> str:
        message, result = got.message, self.result
        self._beat(message)
        reply = self._call_app(message, result)
        encrypt = self.settings.encrypt or got.envelope.encrypted
        try:
            encoded = self._encode(reply, encrypt, cache)
        except Exception as exc:  # unsupported record, too large
            logger.exception(f"{self.email}: could not encode the reply")
            reply = self._error_reply(message, exc, result)
            try:
                encoded = self._encode(reply, encrypt, None)
            except Exception:
                logger.exception(f"{self.email}: could not encode an error reply either")
                result.undelivered.append(f"{message.metadata.message_id}: could not encode")
                remove(got.path)
                return "failed"
        try:
            # Recorded as answered *before* the reply is written: at most one reply per
            # request ever leaves this datasite. A crash between the two loses the reply (the
            # aggregator times out and names this datasite, which is visible); the other order
            # would make a restarted node run the app on the private data again and send a
            # second result (a randomised answer twice), which the grid refuses as a replay.
            assert self._answered is not None
            self._answered.add(message.metadata.message_id)
            self.endpoint.send(encoded, self.aggregator)
        except OSError as exc:
            logger.error(
                f"{self.email}: could not send the reply to {message.metadata.message_id}: {exc}"
            )
            result.undelivered.append(f"{message.metadata.message_id}: {exc}")
            remove(got.path)
            return "failed"
        remove(got.path)
        result.answered += 1
        self._garbage += got.envelope.body_length + encoded.size
        return "answered"

    def _encode(self, reply: Message, encrypt: bool, cache: ChecksumCache | None):
        return self.endpoint.encode(reply, self.aggregator, encrypt=encrypt, checksum_cache=cache)

    def _beat(self, message: Message) -> None:
        """Tell the heartbeat which app and round this node serves (when that changes)."""
        if self.heartbeat is None:
            return
        key = (self.app_name, server_round([message]))
        if key == self._beat_key:
            return
        self._beat_key = key
        try:
            self.heartbeat.update(app=key[0], round=key[1])
        except Exception as exc:  # monitoring must never stop the node
            logger.warning(f"{self.email}: heartbeat update failed: {exc!r}")

    def _check_instruction(self, message: Message) -> None:
        md = message.metadata
        if md.dst_node_id != self.node_id:
            raise MessageFileError(
                f"addressed to node {md.dst_node_id}, this datasite is node {self.node_id}",
                kind="wrong-recipient",
                sender=self.aggregator,
            )
        if md.ttl <= 0 or md.created_at + md.ttl < time.time():
            raise MessageFileError(
                f"expired (created {md.created_at:.0f}, ttl {md.ttl:g} s)",
                kind="expired",
                sender=self.aggregator,
            )

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
        reply, raised = answer(
            self.client_app,
            message,
            self._context(message.metadata.run_id),
            node_id=self.node_id,
            data_path=self.data_path,
            who=self.email,
        )
        if raised is not None:
            self._app_error(message, raised, result)
        return reply

    def _error_reply(self, message: Message, exc: BaseException, result: NodeResult) -> Message:
        self._app_error(message, exc, result)
        return error_reply(message, exc, node_id=self.node_id)

    @staticmethod
    def _app_error(message: Message, exc: BaseException, result: NodeResult) -> None:
        kind = type(exc).__qualname__
        result.app_errors.append(AppError(message.metadata.message_id, kind, str(exc)))
