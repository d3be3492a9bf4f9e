"""The datasite's side: a loop that feeds messages from its inbox to a ClientApp."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from loguru import logger

from syft_flwr.crypto import MessageKeys
from syft_flwr.network import DirectoryWatcher, Network, validate_email, validate_name
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.codec import (
    FILE_SUFFIX,
    KIND_STOP,
    ChecksumCache,
    MessageFileError,
    Scratch,
    check_freshness,
    decode_message,
    encode_message,
    read_envelope,
    read_segments,
)
from syft_flwr.transport.grid import server_round
from syft_flwr.transport.ids import is_message_id, new_message_id, node_id_for
from syft_flwr.transport.inbox import (
    InboxFile,
    files_to_read,
    refuse,
    remove,
    write_message,
)
from syft_flwr.transport.report import QuarantinedFile, count_refusals
from syft_flwr.transport.settings import (
    COLLECT_AFTER_BYTES,
    COLLECT_NOW_BYTES,
    DEFAULT_ENCRYPT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MESSAGE_TTL,
    ENCRYPT_ENV,
    IDLE_TIMEOUT_ENV,
    MESSAGE_TTL_ENV,
    QUIET_BEFORE_COLLECT,
    RESCAN_INTERVAL,
    collect_garbage,
    resolve_flag,
    resolve_max_bytes,
    resolve_seconds,
)
from syft_flwr.utils import dataset_path_context

if TYPE_CHECKING:
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
    """Why :meth:`DatasiteNode.serve` returned and what it did."""

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
    serving.

    A message is accepted only from ``aggregator`` (the one named in the project it serves),
    written by it (the file's MAC), addressed to this datasite and app, fresh
    (``message_ttl``, default ``$SYFT_FLWR_MESSAGE_TTL`` or 600 s) and never answered before.
    Any other file is refused: moved to ``private/<email>/flwr/<app>/quarantine/`` with the
    reason, appended to ``private/<email>/flwr/<app>/security.jsonl``, and counted in the
    :class:`NodeResult`.
    Replies are encrypted to the aggregator when ``encrypt`` (default ``$SYFT_FLWR_ENCRYPT``
    or on) or when the request was. With a ``heartbeat``, the node tells it which app and
    round it is serving.
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
        self.encrypt = resolve_flag(encrypt, ENCRYPT_ENV, DEFAULT_ENCRYPT, "message encryption")
        self.message_ttl = resolve_seconds(
            message_ttl, MESSAGE_TTL_ENV, DEFAULT_MESSAGE_TTL, "message TTL"
        )
        self.keys = MessageKeys(network, self.email)
        self.heartbeat = heartbeat
        self._beat_key: tuple[str, int | None] | None = None
        self.node_id = node_id_for(self.email)
        self.inbox = network.flwr_inbox(self.email, self.app_name)
        self.aggregator_inbox = network.flwr_inbox(self.aggregator, self.app_name)
        self.private_dir = network.flwr_private_dir(self.email, self.app_name)
        self.quarantine_dir = self.private_dir / "quarantine"
        self.security_log = network.security_log(self.email, self.app_name)
        self._scratch = Scratch()
        self._contexts: dict[int, Context] = {}
        self._stop = threading.Event()
        self._watcher: DirectoryWatcher | None = None
        self._serving = threading.Lock()
        self._garbage = 0  # bytes of messages handled since the last garbage collection
        #: names of refused files that could not be moved out of the inbox: skipped on later
        #: scans instead of being refused again on every one
        self._unmovable: set[str] = set()

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
                self._scratch.release()
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
        rescan = True  # the whole inbox at first and after a quiet spell, else what arrived
        while not self._stop.is_set():
            for entry in files_to_read(self.inbox, self._watcher, rescan=rescan):
                if self._stop.is_set():
                    break
                if entry.name in self._unmovable:
                    continue
                outcome = self._handle(entry, answered, result, started)
                last_activity = time.monotonic()
                if outcome == "stop":
                    result.reason = "stop-message"
                    logger.info(f"{self.email}: stop message received; {self._summary(result)}")
                    return result
            if self._garbage >= COLLECT_AFTER_BYTES:
                if self._garbage < COLLECT_NOW_BYTES and self._watcher.wait(
                    timeout=QUIET_BEFORE_COLLECT
                ):
                    rescan = False
                    continue  # another message: serve it first, collect when quiet
                collect_garbage()  # see settings.COLLECT_AFTER_BYTES
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
            rescan = not self._watcher.wait(timeout=min(self.idle_timeout - idle, RESCAN_INTERVAL))
        logger.info(f"{self.email}: stopped; {self._summary(result)}")
        return result

    def _summary(self, result: NodeResult) -> str:
        return (
            f"answered {result.answered}, app errors {len(result.app_errors)}, "
            f"quarantined {len(result.quarantined)}"
        )

    def _handle(
        self,
        entry: os.DirEntry[str] | InboxFile,
        answered: _AnsweredLog,
        result: NodeResult,
        started: float,
    ) -> str:
        name, path = entry.name, entry.path
        if not name.endswith(FILE_SUFFIX):
            return self._refuse(
                path, MessageFileError("unexpected file name (not a message file)"), result
            )
        cache: ChecksumCache = {}  # checksums of the request's arrays, for the reply
        try:
            with open(path, "rb") as f:
                envelope = read_envelope(
                    f,
                    name,
                    recipient=self.email,
                    app_name=self.app_name,
                    senders=(self.aggregator,),
                    max_bytes=self.max_message_bytes,
                    keys=self.keys,
                )
                if envelope.kind == KIND_STOP and envelope.created_at < (
                    started - STALE_STOP_SECONDS
                ):
                    remove(path)
                    logger.info(f"{self.email}: ignoring a stop message from an earlier run")
                    return "skipped"
                check_freshness(envelope, ttl=self.message_ttl)
                if envelope.reply_to:
                    raise MessageFileError(
                        "a datasite takes instructions, not replies",
                        kind="unexpected",
                        sender=envelope.sender,
                    )
                if envelope.message_id in answered:
                    raise MessageFileError(
                        f"replay: message {envelope.message_id} was already answered",
                        kind="replay",
                        sender=envelope.sender,
                    )
                if envelope.kind == KIND_STOP:
                    answered.add(envelope.message_id)  # a copy of it never stops a new node
                    remove(path)
                    return "stop"
                segments = read_segments(
                    f, envelope, keys=self.keys, checksum_cache=cache, scratch=self._scratch
                )
            message = decode_message(envelope, segments)
            del segments
            self._check_instruction(message)
        except FileNotFoundError:
            return "skipped"
        except MessageFileError as exc:
            return self._refuse(path, exc, result)

        self._beat(message)
        reply = self._call_app(message, result)
        encrypt = self.encrypt or envelope.encrypted
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
                remove(path)
                return "failed"
        try:
            # Recorded as answered *before* the reply is written: at most one reply per
            # request ever leaves this datasite. A crash between the two loses the reply (the
            # aggregator times out and names this datasite, which is visible); the other order
            # would make a restarted node run the app on the private data again and send a
            # second result (a randomised answer twice), which the grid refuses as a replay.
            answered.add(message.metadata.message_id)
            write_message(self.aggregator_inbox, encoded)
        except OSError as exc:
            logger.error(
                f"{self.email}: could not send the reply to {message.metadata.message_id}: {exc}"
            )
            result.undelivered.append(f"{message.metadata.message_id}: {exc}")
            remove(path)
            return "failed"
        finally:
            self._scratch.done()
        remove(path)
        result.answered += 1
        self._garbage += envelope.body_length + encoded.size
        return "answered"

    def _encode(self, reply: Message, encrypt: bool, cache: ChecksumCache | None):
        return encode_message(
            reply,
            sender=self.email,
            recipient=self.aggregator,
            app_name=self.app_name,
            max_bytes=self.max_message_bytes,
            keys=self.keys,
            encrypt=encrypt,
            checksum_cache=cache,
            scratch=self._scratch,
        )

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

    def _refuse(self, path: str, error: MessageFileError, result: NodeResult) -> str:
        """Quarantine a refused file (one that cannot be moved is skipped from then on)."""
        refused = refuse(
            Path(path),
            error,
            quarantine_dir=self.quarantine_dir,
            log_path=self.security_log,
            receiver=self.email,
        )
        if refused is not None:
            result.quarantined.append(refused)
            if not refused.set_aside:
                self._unmovable.add(os.path.basename(path))
        return "quarantined"
