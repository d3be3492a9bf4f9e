"""The aggregator's side: a Flower ``Grid`` whose nodes are datasites reached through files."""

from __future__ import annotations

import gc
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid
from loguru import logger

from syft_flwr.network import DirectoryWatcher, Network, validate_email, validate_name
from syft_flwr.transport import flwr_compat
from syft_flwr.transport.codec import (
    FILE_SUFFIX,
    KIND_MESSAGE,
    ChecksumCache,
    MessageFileError,
    decode_message,
    encode_message,
    encode_stop,
    read_envelope,
    read_segments,
)
from syft_flwr.transport.ids import new_message_id, node_id_for
from syft_flwr.transport.inbox import list_inbox, private_app_dir, quarantine, write_message
from syft_flwr.transport.report import ReplyError, RoundReport, RunReport
from syft_flwr.transport.settings import (
    COLLECT_AFTER_BYTES,
    DEFAULT_MSG_TIMEOUT,
    MSG_TIMEOUT_ENV,
    RESCAN_INTERVAL,
    resolve_max_bytes,
    resolve_seconds,
)


class DatasiteGrid(Grid):
    """A ``flwr.serverapp.Grid`` over a datasite network.

    Each datasite is a Flower node whose id is derived from its email
    (:func:`~syft_flwr.transport.ids.node_id_for`). ``push_messages`` drops one file per
    message into the datasite's inbox; replies arrive as files in the aggregator's inbox.
    ``send_and_receive`` returns as soon as every reply is in, or at the timeout with what
    arrived; :attr:`report` records, per call, who answered, who sent an error reply and
    who stayed silent.

    ``timeout`` (default ``$SYFT_FLWR_MSG_TIMEOUT`` or 120 s) caps every wait: a strategy
    passing ``timeout=3600`` to ``send_and_receive`` still waits at most ``timeout``.
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
    ) -> None:
        self.network = network
        self.app_name = validate_name(app_name, "app name")
        self.aggregator = validate_email(aggregator)
        if isinstance(datasites, str):
            raise ValueError("datasites must be a list of emails, not a single string")
        self.datasites = [validate_email(email) for email in datasites]
        if not self.datasites:
            raise ValueError("a DatasiteGrid needs at least one datasite")
        if len(set(self.datasites)) != len(self.datasites):
            raise ValueError(f"datasites are listed twice: {self.datasites}")
        if self.aggregator in self.datasites:
            raise ValueError(f"{aggregator} is the aggregator; it cannot also be a datasite")
        self.timeout = resolve_seconds(timeout, MSG_TIMEOUT_ENV, DEFAULT_MSG_TIMEOUT, "timeout")
        self.max_message_bytes = resolve_max_bytes(max_message_bytes)

        self._node_ids = {email: node_id_for(email) for email in self.datasites}
        self._emails = {node_id: email for email, node_id in self._node_ids.items()}
        if len(self._emails) != len(self._node_ids):  # a 64-bit hash collision
            raise ValueError(f"two datasites map to the same node id: {self._node_ids}")

        self._run = flwr_compat.make_run(
            run_id if run_id is not None else secrets.randbits(62) + 1, run_config
        )
        flwr_compat.ensure_task_identity(self._run.run_id)

        self.inbox = network.flwr_inbox(self.aggregator, self.app_name)
        self.quarantine_dir = (
            private_app_dir(network, self.aggregator, self.app_name) / "quarantine"
        )
        self.report = RunReport()
        self._lock = threading.RLock()
        self._pending: dict[str, str] = {}  # request id -> datasite email
        self._requests: dict[str, Path] = {}  # request id -> file dropped in the datasite inbox
        self._replies: dict[str, Message] = {}  # request id -> reply, not yet pulled
        self._calls = 0
        self._garbage = 0  # bytes of replies received since the last garbage collection
        self._closed = False
        self._watcher = DirectoryWatcher(self.inbox)  # before any send: no reply is missed

    # -- identity ----------------------------------------------------------------------------
    def node_id_of(self, email: str) -> int:
        try:
            return self._node_ids[email]
        except KeyError:
            raise ValueError(f"{email} is not a datasite of this grid ({self.datasites})") from None

    def email_of(self, node_id: int) -> str:
        try:
            return self._emails[node_id]
        except KeyError:
            raise ValueError(
                f"node id {node_id} is not a datasite of this grid; use get_node_ids()"
            ) from None

    # -- flwr Grid API -----------------------------------------------------------------------
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

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids.values())

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Drop each message into its datasite's inbox; returns the message ids."""
        with self._lock:
            self._check_open()
            messages = list(messages)
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
            cache: ChecksumCache = {}  # the same arrays go to every datasite: hash them once
            ids: list[str] = []
            for msg in messages:
                email = self._emails[msg.metadata.dst_node_id]
                message_id = new_message_id()
                flwr_compat.set_message_id(msg, message_id)
                flwr_compat.set_route(
                    msg, run_id=self._run.run_id, src_node_id=flwr_compat.SUPERLINK_NODE_ID
                )
                encoded = encode_message(
                    msg,
                    sender=self.aggregator,
                    recipient=email,
                    app_name=self.app_name,
                    max_bytes=self.max_message_bytes,
                    checksum_cache=cache,
                )
                path = write_message(self.network.flwr_inbox(email, self.app_name), encoded)
                self._pending[message_id] = email
                self._requests[message_id] = path
                ids.append(message_id)
            return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Replies that have arrived for ``message_ids`` (each is returned once)."""
        with self._lock:
            self._check_open()
            self._collect()
            out = []
            for message_id in message_ids:
                reply = self._replies.pop(message_id, None)
                if reply is not None:
                    out.append(reply)
                    self._forget(message_id, withdraw=False)  # one reply per request
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
            round_report = RoundReport(
                index=self._calls,
                message_types=sorted({m.metadata.message_type for m in messages}),
                server_round=_server_round(messages),
                sent_to=[self._emails.get(m.metadata.dst_node_id, "?") for m in messages],
                timeout=limit,
            )
            ids = list(self.push_messages(messages))
            del messages
            emails = {request_id: self._pending[request_id] for request_id in ids}
            if self._garbage >= COLLECT_AFTER_BYTES:
                # free earlier replies (see settings.COLLECT_AFTER_BYTES) while the datasites
                # work on the new messages
                gc.collect()
                self._garbage = 0
            deadline = started + limit
            replies: dict[str, Message] = {}
            while True:
                for reply in self.pull_messages([i for i in ids if i not in replies]):
                    replies[reply.metadata.reply_to_message_id] = reply
                remaining = deadline - time.monotonic()
                if len(replies) == len(ids) or remaining <= 0:
                    break
                self._watcher.wait(timeout=min(remaining, RESCAN_INTERVAL))

            ordered = [replies[i] for i in ids if i in replies]
            for request_id in ids:
                email = emails[request_id]
                reply = replies.get(request_id)
                if reply is None:
                    round_report.missing.append(email)
                elif reply.has_error():
                    round_report.errors[email] = ReplyError(
                        reply.error.code, reply.error.reason or "(no reason given)"
                    )
                else:
                    round_report.answered.append(email)
            for request_id in ids:
                if request_id not in replies:
                    self._forget(request_id, withdraw=True)
            round_report.duration = time.monotonic() - started
            self.report.add_round(round_report)
            if round_report.missing:
                logger.warning(
                    f"no reply within {limit:g} s from {', '.join(round_report.missing)} "
                    f"(app {self.app_name}); continuing with {len(ordered)} of {len(ids)} replies"
                )
            for email, err in round_report.errors.items():
                logger.warning(f"{email} replied with an error: {err.reason}")
            return ordered

    # -- syft_flwr extras --------------------------------------------------------------------
    def stop_datasites(self) -> None:
        """Tell every datasite node of this app to stop serving."""
        with self._lock:
            for email in self.datasites:
                encoded = encode_stop(
                    sender=self.aggregator, recipient=email, app_name=self.app_name
                )
                write_message(self.network.flwr_inbox(email, self.app_name), encoded)
            logger.info(f"sent stop to {', '.join(self.datasites)} (app {self.app_name})")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._watcher.close()

    def __enter__(self) -> DatasiteGrid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this DatasiteGrid is closed; create a new one")

    def _forget(self, request_id: str, *, withdraw: bool) -> None:
        self._pending.pop(request_id, None)
        path = self._requests.pop(request_id, None)
        if withdraw and path is not None:
            path.unlink(missing_ok=True)  # a late datasite should not work on a stale request

    def _collect(self) -> None:
        """Read every reply file in the inbox into ``_replies`` (or quarantine it)."""
        for path in list_inbox(self.inbox):
            reply = self._read_reply(path)
            if reply is not None:
                self._replies[reply.metadata.reply_to_message_id] = reply

    def _read_reply(self, path: Path) -> Message | None:
        if not path.name.endswith(FILE_SUFFIX):
            self._quarantine(path, "unexpected file name (not a message file)")
            return None
        try:
            with open(path, "rb") as f:
                envelope = read_envelope(
                    f,
                    path.name,
                    recipient=self.aggregator,
                    app_name=self.app_name,
                    senders=self._node_ids,
                    max_bytes=self.max_message_bytes,
                )
                if envelope.kind != KIND_MESSAGE or not envelope.reply_to:
                    raise MessageFileError(f"expected a reply, got a {envelope.kind!r} file")
                expected_sender = self._pending.get(envelope.reply_to)
                if expected_sender is None:
                    logger.warning(
                        f"ignoring a late or unknown reply from {envelope.sender} "
                        f"(to message {envelope.reply_to})"
                    )
                    self.report.add_late(envelope.sender)
                    path.unlink(missing_ok=True)
                    return None
                if envelope.sender != expected_sender:
                    raise MessageFileError(
                        f"reply from {envelope.sender} to a message sent to {expected_sender}"
                    )
                segments = read_segments(f, envelope)
            reply = decode_message(envelope, segments)
        except FileNotFoundError:
            return None
        except MessageFileError as exc:
            self._quarantine(path, exc.reason)
            return None
        self._garbage += envelope.body_length
        # the sender is authenticated by the header checks above, not by what it wrote
        flwr_compat.set_route(
            reply, run_id=self._run.run_id, src_node_id=self._node_ids[envelope.sender]
        )
        path.unlink(missing_ok=True)
        return reply

    def _quarantine(self, path: Path, reason: str) -> None:
        target = quarantine(path, self.quarantine_dir, reason)
        if target is not None:
            self.report.add_quarantined(str(target), reason)


def _server_round(messages: list[Message]) -> int | None:
    """The round number strategies put in the ConfigRecord ("server-round"), or group_id."""
    for msg in messages:
        if msg.has_content():
            for record in msg.content.values():
                if isinstance(record, ConfigRecord) and isinstance(record.get("server-round"), int):
                    return int(record["server-round"])
        if msg.metadata.group_id.isdigit():
            return int(msg.metadata.group_id)
    return None
