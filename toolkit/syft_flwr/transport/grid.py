"""The aggregator's side: a Flower ``Grid`` whose nodes are datasites reached through files."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from flwr.app import ConfigRecord, Message
from loguru import logger

from syft_flwr import crypto as keys_module
from syft_flwr.events import (
    DatasiteMissing,
    EventBus,
    FileRefused,
    LateReply,
    MessageSent,
    ReplyError,
    ReplyReceived,
    RoundFinished,
    RoundMetrics,
    RoundStarted,
    RunFinished,
    RunStarted,
    Subscriber,
    clean_metrics,
)
from syft_flwr.network import Network, validate_email
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.codec import (
    KIND_MESSAGE,
    ChecksumCache,
    Envelope,
    MessageFileError,
    check_freshness,
    encode_stop,
)
from syft_flwr.transport.endpoint import Endpoint, Received
from syft_flwr.transport.ids import new_message_id, node_id_for
from syft_flwr.transport.inbox import InboxFile, remove
from syft_flwr.transport.report import QuarantinedFile, RunReport
from syft_flwr.transport.run_grid import RunGrid
from syft_flwr.transport.settings import (
    COLLECT_AFTER_BYTES,
    MESSAGE_TTL_ENV,
    TransportSettings,
    collect_garbage,
)


@dataclass
class _Request:
    """A message this grid sent: to whom, in which round, when, and where its file is."""

    email: str
    round: int
    sent_at: float  # time.monotonic()
    path: str | None  # None: never written (the datasite cannot be sent messages)


class DatasiteGrid(RunGrid):
    """A ``flwr.serverapp.Grid`` over a datasite network.

    Each datasite is a Flower node whose id is derived from its email
    (:func:`~syft_flwr.transport.ids.node_id_for`). ``push_messages`` drops one authenticated
    (and by default encrypted) file per message into the datasite's inbox; replies arrive as
    files in the aggregator's inbox and are accepted only from the datasite that was asked,
    written by it (its MAC), fresh, and once. ``send_and_receive`` returns as soon as every
    reply is in, or at the timeout with what arrived; :attr:`report` records, per call, who
    answered, who sent an error reply and who stayed silent, and every refused file (also
    appended to ``private/<aggregator>/flwr/<app>/security.jsonl``).

    ``timeout`` (default ``$SYFT_FLWR_MSG_TIMEOUT`` or 120 s) caps every wait: a strategy
    passing ``timeout=3600`` to ``send_and_receive`` still waits at most ``timeout``.
    ``encrypt`` (default ``$SYFT_FLWR_ENCRYPT`` or on) encrypts bodies to each datasite's
    published key; ``message_ttl`` (default ``$SYFT_FLWR_MESSAGE_TTL`` or 600 s) is the age
    past which a reply file is refused. The run's events (:mod:`syft_flwr.events`) go to
    :attr:`report` and to each of ``subscribers`` as it goes; a subscriber that raises is
    logged and ignored. Call :meth:`finish` (or :meth:`close`) at the end of the run.

    The aggregator needs its keys on this machine (``syft_flwr.crypto.create_party`` or
    ``setup_rds_server`` makes them); a datasite that never published keys cannot be sent
    encrypted messages and is reported as not answering.
    """

    def __init__(
        self,
        network: Network,
        app_name: str,
        aggregator: str,
        datasites: Sequence[str],
        *,
        timeout: float | None = None,
        run_id: int | None = None,
        run_config: dict | None = None,
        max_message_bytes: int | None = None,
        encrypt: bool | None = None,
        message_ttl: float | None = None,
        subscribers: Sequence[Subscriber] = (),
        settings: TransportSettings | None = None,
    ) -> None:
        self.settings = (settings or TransportSettings.from_env()).but(
            msg_timeout=timeout,
            max_message_bytes=max_message_bytes,
            encrypt=encrypt,
            message_ttl=message_ttl,
        )
        self.endpoint = Endpoint(
            network, aggregator, app_name, settings=self.settings, on_refused=self._refused
        )
        self.network = network
        self.app_name = self.endpoint.app_name
        self.aggregator = self.endpoint.email
        if isinstance(datasites, str):
            raise ValueError("datasites must be a list of emails, not a single string")
        self.datasites = [validate_email(email) for email in datasites]
        if not self.datasites:
            raise ValueError("a DatasiteGrid needs at least one datasite")
        if len(set(self.datasites)) != len(self.datasites):
            raise ValueError(f"datasites are listed twice: {self.datasites}")
        if self.aggregator in self.datasites:
            raise ValueError(f"{aggregator} is the aggregator; it cannot also be a datasite")
        self.timeout = self.settings.msg_timeout
        self.max_message_bytes = self.settings.max_message_bytes
        self.encrypt = self.settings.encrypt
        self.message_ttl = self.settings.message_ttl
        if self.timeout > self.message_ttl:
            logger.warning(
                f"the reply timeout ({self.timeout:g} s) is longer than the message TTL "
                f"({self.message_ttl:g} s): datasites refuse requests older than their TTL; "
                f"raise {MESSAGE_TTL_ENV} on every party"
            )
        self.keys = self.endpoint.keys

        self._node_ids = {email: node_id_for(email) for email in self.datasites}
        self._emails = {node_id: email for email, node_id in self._node_ids.items()}
        if len(self._emails) != len(self._node_ids):  # a 64-bit hash collision
            raise ValueError(f"two datasites map to the same node id: {self._node_ids}")

        super().__init__(run_id, run_config)

        self.inbox = self.endpoint.inbox
        self.quarantine_dir = self.endpoint.quarantine_dir
        self.security_log = self.endpoint.security_log
        self.report = RunReport()
        self._lock = threading.RLock()
        self._started_at = time.time()
        self._requests: dict[str, _Request] = {}  # every request sent, by id
        self._pending: set[str] = set()  # requests awaiting their reply
        self._received: set[str] = set()  # requests whose reply came in
        self._replies: dict[str, Message] = {}  # request id -> reply, not yet pulled
        self._unsent: dict[str, str] = {}  # request id -> why it could not be written
        #: replies read, not yet removed: name -> (path, inode, mtime in ns)
        self._consumed: dict[str, tuple[str, int, int]] = {}
        self._calls = 0
        self._round: int | None = None  # the round last announced by a RoundStarted
        self._garbage = 0  # bytes of replies received since the last garbage collection
        self._events = EventBus([self.report, *subscribers])
        self._run_announced = False
        self._finished = False
        self._closed = False
        self.endpoint.open()  # before any send: no reply is missed

    # -- identity ----------------------------------------------------------------------------
    def node_id_of(self, email: str) -> int:
        """The Flower node id of datasite ``email`` (stable: derived from the email)."""
        try:
            return self._node_ids[email]
        except KeyError:
            raise ValueError(f"{email} is not a datasite of this grid ({self.datasites})") from None

    def email_of(self, node_id: int) -> str:
        """The datasite behind Flower node id ``node_id``."""
        try:
            return self._emails[node_id]
        except KeyError:
            raise ValueError(
                f"node id {node_id} is not a datasite of this grid; use get_node_ids()"
            ) from None

    # -- flwr Grid API -----------------------------------------------------------------------
    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids.values())

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Drop each message into its datasite's inbox; returns the message ids."""
        messages = list(messages)
        with self._lock:
            round_ = server_round(messages)
            return self._push(messages, round_ if round_ is not None else self._calls)

    def _push(self, messages: list[Message], round_: int) -> list[str]:
        self._check_open()
        for msg in messages:  # validate all before writing any
            if not isinstance(msg, Message):
                raise TypeError(f"expected flwr Messages, got {type(msg).__name__}")
            if msg.metadata.dst_node_id not in self._emails:
                raise ValueError(
                    f"message for unknown node id {msg.metadata.dst_node_id}; the grid's "
                    f"nodes are {self.get_node_ids()} ({', '.join(self.datasites)})"
                )
            if msg.metadata.reply_to_message_id or not msg.metadata.ttl > 0:
                raise ValueError("push_messages takes new instructions (no reply_to, ttl > 0)")
        self._announce_run()
        cache: ChecksumCache = {}  # the same arrays go to every datasite: hash them once
        ids: list[str] = []
        for msg in messages:
            email = self._emails[msg.metadata.dst_node_id]
            message_id = new_message_id()
            flwr_compat.set_message_id(msg, message_id)
            flwr_compat.set_route(
                msg, run_id=self._run.run_id, src_node_id=flwr_compat.SUPERLINK_NODE_ID
            )
            ids.append(message_id)
            try:
                encoded = self.endpoint.encode(msg, email, checksum_cache=cache)
            except (keys_module.PublicKeysNotFoundError, keys_module.PublicKeysInvalidError) as exc:
                reason = f"cannot send a message to {email}: {exc}"
                logger.warning(reason)
                self._unsent[message_id] = reason
                self._requests[message_id] = _Request(email, round_, time.monotonic(), None)
                continue
            path = self.endpoint.send(encoded, email)
            self._requests[message_id] = _Request(email, round_, time.monotonic(), path)
            self._pending.add(message_id)
            self._events.publish(MessageSent(email, round_, encoded.size))
        self._remove_consumed()
        return ids

    def _remove_consumed(self) -> None:
        """Delete the reply files already read. Deferred until new messages are out: the
        datasites then work while this side waits, and a file deletion (~0.2 ms on a small
        VM's disk) stays off the round trip."""
        for path, _, _ in self._consumed.values():
            remove(path)
        self._consumed.clear()

    def _already_read(self, name: str) -> bool:
        """Whether the inbox file ``name`` is a reply read before (waiting to be removed), not
        a new file written under its name since (a replay, which is refused as such)."""
        consumed = self._consumed.get(name)
        if consumed is None:
            return False
        path, inode, mtime = consumed
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return True
        return (stat.st_ino, stat.st_mtime_ns) == (inode, mtime)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Replies that have arrived for ``message_ids`` (each is returned once)."""
        with self._lock:
            self._check_open()
            self._collect(self.endpoint.files(scan=True))
            out = []
            for message_id in message_ids:
                reply = self._replies.pop(message_id, None)
                if reply is not None:
                    out.append(reply)
            return out

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push ``messages`` and wait for their replies, at most ``min(timeout, self.timeout)``.

        Error replies are returned as Flower messages carrying an ``Error`` (strategies count
        them as failures). Datasites that did not answer in time are named in a warning and in
        :attr:`report`; their requests are withdrawn from their inboxes.
        """
        limit = self.timeout if timeout is None else min(float(timeout), self.timeout)
        with self._lock:
            messages = list(messages)
            if not messages:
                return []
            started = time.monotonic()
            self._calls += 1
            exchange = self._calls
            message_types = tuple(sorted({m.metadata.message_type for m in messages}))
            numbered = server_round(messages)
            sent_to = tuple(self._emails.get(m.metadata.dst_node_id, "?") for m in messages)
            round_ = numbered if numbered is not None else exchange
            if round_ != self._round and all(
                m.metadata.dst_node_id in self._emails for m in messages
            ):
                self._announce_run()
                self._round = round_
                self._events.publish(
                    RoundStarted(round_, tuple(dict.fromkeys(sent_to)), timeout_s=limit)
                )
            ids = self._push(messages, round_)
            del messages
            emails = {request_id: self._requests[request_id].email for request_id in ids}
            if self._garbage >= COLLECT_AFTER_BYTES:
                # free earlier replies (see settings.COLLECT_AFTER_BYTES) while the datasites
                # work on the new messages
                collect_garbage()
                self._garbage = 0
            deadline = started + limit
            outstanding = {i for i in ids if i not in self._unsent}
            # wait first: the replies cannot be in yet, and the watcher (started before any
            # send) wakes at once for any that already came
            while outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.endpoint.wait(remaining)
                self._check_open()
                outstanding.difference_update(self._collect(self.endpoint.files()))
            replies = {i: self._replies.pop(i) for i in ids if i in self._replies}

            ordered = [replies[i] for i in ids if i in replies]
            answered: list[str] = []
            missing: list[str] = []
            errors: dict[str, ReplyError] = {}
            failed: dict[str, str] = {}
            waited = time.monotonic() - started
            for request_id in ids:
                email = emails[request_id]
                reply = replies.get(request_id)
                if reply is None:
                    missing.append(email)
                    why = self._unsent.pop(request_id, None)
                    failed[email] = why or f"no reply within {limit:g} s"
                    self._events.publish(DatasiteMissing(email, round_, 0.0 if why else waited))
                elif reply.has_error():
                    err = ReplyError(reply.error.code, reply.error.reason or "(no reason given)")
                    errors[email] = err
                    failed[email] = err.reason
                else:
                    answered.append(email)
            for request_id in ids:
                if request_id not in replies:
                    self._forget(request_id)
            self._events.publish(
                RoundFinished(
                    round_,
                    tuple(answered),
                    failed,
                    exchange=exchange,
                    server_round=numbered,
                    message_types=message_types,
                    sent_to=sent_to,
                    errors=errors,
                    missing=tuple(missing),
                    timeout_s=limit,
                    duration_s=time.monotonic() - started,
                )
            )
            if missing:
                logger.warning(
                    f"no reply within {limit:g} s from {', '.join(missing)} "
                    f"(app {self.app_name}); continuing with {len(ordered)} of {len(ids)} replies"
                )
            for email, err in errors.items():
                logger.warning(f"{email} replied with an error: {err.reason}")
            return ordered

    # -- syft_flwr extras --------------------------------------------------------------------
    def report_metrics(self, server_round: int, metrics: Mapping[str, Any]) -> None:
        """Record the strategy's aggregated metrics of ``server_round`` (loss, accuracy, ...:
        the finite numbers of ``metrics``) as the run's ``RoundMetrics`` event."""
        with self._lock:
            self._announce_run()
            self._events.publish(RoundMetrics(int(server_round), clean_metrics(metrics)))

    def stop_datasites(self) -> None:
        """Tell every datasite node of this app to stop serving. Every datasite is tried;
        if a stop message could not be written, the first such OSError is raised after."""
        with self._lock:
            sent: list[str] = []
            failed: OSError | None = None
            for email in self.datasites:
                try:
                    encoded = encode_stop(
                        sender=self.aggregator,
                        recipient=email,
                        app_name=self.app_name,
                        keys=self.keys,
                    )
                except (keys_module.PublicKeysNotFoundError, keys_module.PublicKeysInvalidError):
                    continue  # nothing could be sent to it either (see push_messages)
                try:
                    self.endpoint.send(encoded, email)
                except OSError as exc:
                    failed = failed or exc
                    continue
                sent.append(email)
            shown = ", ".join(sent) if len(sent) <= 5 else f"{len(sent)} datasites"
            logger.info(f"sent stop to {shown or 'no datasite'} (app {self.app_name})")
            if failed is not None:
                raise failed

    def finish(self, ok: bool | None = None, failures: dict[str, str] | None = None) -> None:
        """Publish that the run is over (once). ``ok``/``failures`` default to what
        :attr:`report` says; pass them when the run failed elsewhere (the ServerApp raised)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if failures is None:
                failures = self.report.failures()
            if ok is None:
                ok = self.report.ok and not failures
            self._announce_run()
            self._events.publish(RunFinished(bool(ok), dict(failures)))

    def close(self) -> None:
        """Stop watching the inbox; calls :meth:`finish` if nobody did."""
        with self._lock:
            if not self._closed:
                self.finish()
                self._closed = True
                self._remove_consumed()
                self.endpoint.close()

    def __enter__(self) -> DatasiteGrid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this DatasiteGrid is closed; create a new one")

    def _announce_run(self) -> None:
        if not self._run_announced:
            self._run_announced = True
            self._events.publish(RunStarted(self._run.run_id, self.app_name, tuple(self.datasites)))

    def _forget(self, request_id: str) -> None:
        """Stop waiting for a reply and withdraw the request file: a late datasite should
        not work on a stale request."""
        self._pending.discard(request_id)
        self._unsent.pop(request_id, None)
        request = self._requests.get(request_id)
        if request is not None and request.path is not None:
            remove(request.path)
            request.path = None

    def _collect(self, files: list[os.DirEntry[str]] | list[InboxFile]) -> list[str]:
        """Read the reply ``files`` of the inbox into ``_replies`` (or refuse them); returns
        the ids of the requests they answer."""
        answered: list[str] = []
        for entry in files:
            if self._already_read(entry.name):
                continue
            got = self.endpoint.receive(entry, senders=self._node_ids, screen=self._screen)
            if not isinstance(got, Received):
                continue
            reply, sender = got.message, got.envelope.sender
            request_id = got.envelope.reply_to
            self._garbage += got.envelope.body_length
            # the sender is authenticated by the file's MAC, not by what it wrote
            flwr_compat.set_route(
                reply, run_id=self._run.run_id, src_node_id=self._node_ids[sender]
            )
            # removed once the next messages are out (see _remove_consumed)
            self._consumed[got.name] = (got.path, got.inode, got.mtime_ns)
            self._replies[request_id] = reply
            self._received.add(request_id)
            self._pending.discard(request_id)
            answered.append(request_id)
            request = self._requests[request_id]
            request.path = None  # the datasite removed it when it answered
            self._events.publish(
                ReplyReceived(
                    request.email,
                    request.round,
                    time.monotonic() - request.sent_at,
                    got.size,
                    (reply.error.reason or "error") if reply.has_error() else None,
                )
            )
        return answered

    def _late(self, sender: str, why: str) -> str:
        logger.warning(f"ignoring a reply from {sender}: {why}")
        self._events.publish(LateReply(sender, why))
        return "late"

    def _screen(self, envelope: Envelope, f: BinaryIO) -> str | None:
        """The aggregator's checks of an authenticated header: a fresh reply, once, from the
        datasite asked, to a request still pending. Late replies are taken here."""
        sender, request_id = envelope.sender, envelope.reply_to
        if envelope.kind != KIND_MESSAGE or not request_id:
            raise MessageFileError(
                f"expected a reply, got a {envelope.kind!r} file that is not one",
                kind="unexpected",
                sender=sender,
            )
        request = self._requests.get(request_id)
        if request is None and envelope.created_at < self._started_at:
            # written by the datasite (its MAC) before this grid existed: a reply that came in
            # after an earlier run of the aggregator ended (taken quietly)
            return self._late(sender, f"it answers message {request_id} of an earlier run")
        check_freshness(envelope, ttl=self.message_ttl)
        if request_id in self._received:
            raise MessageFileError(
                f"replay: a reply to message {request_id} was already received",
                kind="replay",
                sender=sender,
            )
        if request is None:
            if self.endpoint.read_body(f, envelope).metadata.run_id != self._run.run_id:
                # a request of an aggregator that died, answered after this one began
                return self._late(sender, f"it answers message {request_id} of another run")
            raise MessageFileError(
                f"a reply to message {request_id}, which this aggregator never sent",
                kind="unexpected",
                sender=sender,
            )
        if sender != request.email:
            raise MessageFileError(
                f"reply from {sender} to a message sent to {request.email}",
                kind="wrong-sender",
                sender=sender,
            )
        if request_id not in self._pending:
            return self._late(sender, f"message {request_id} timed out before it came")
        return None

    def _refused(self, refused: QuarantinedFile) -> None:
        self._events.publish(
            FileRefused(
                refused.path,
                refused.reason,
                refused.kind,
                refused.sender,
                set_aside=refused.set_aside,
            )
        )


def server_round(messages: Sequence[Message]) -> int | None:
    """The round number strategies put in the ConfigRecord ("server-round"), or group_id."""
    for msg in messages:
        if msg.has_content():
            for record in msg.content.values():
                if isinstance(record, ConfigRecord) and isinstance(record.get("server-round"), int):
                    return int(record["server-round"])
        if msg.metadata.group_id.isdigit():
            return int(msg.metadata.group_id)
    return None
