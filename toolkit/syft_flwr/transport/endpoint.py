"""One party's end of the message files of one app: the single receive pipeline.

An :class:`Endpoint` owns everything about a party's message files: its keys, its inbox
and the subscription of the process's watcher to it, where refused files go (quarantine,
security log) and the settings, read once. Both sides use it: the aggregator's
:class:`~syft_flwr.transport.grid.DatasiteGrid` and a datasite's
:class:`~syft_flwr.transport.node.DatasiteNode` only add what their role checks.

:meth:`Endpoint.receive` is the one way a file comes in: the name, the header (format,
size, MAC, recipient, app, sender), the role's own checks (a *screen*), the body
(checksums or decryption), the Flower message. A file that fails any check is set aside
and logged; nothing is decoded before it is authenticated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flwr.app import Message

from syft_flwr.crypto import MessageKeys
from syft_flwr.network import DirectoryWatcher, Network, validate_email, validate_name
from syft_flwr.network.safe_read import UnsafeFileError, is_plain_path, open_regular
from syft_flwr.syftbox.workspace import is_syftbox
from syft_flwr.transport.codec import (
    FILE_SUFFIX,
    ChecksumCache,
    EncodedMessage,
    Envelope,
    MessageFileError,
    Scratch,
    decode_message,
    encode_message,
    read_envelope,
    read_segments,
)
from syft_flwr.transport.errors import IncompleteMessageError, SyncFileTooLargeError
from syft_flwr.transport.inbox import InboxFile, list_inbox, refuse, remove, write_message
from syft_flwr.transport.report import QuarantinedFile
from syft_flwr.transport.settings import (
    INCOMPLETE_RETRY,
    POLL_INTERVAL,
    SYNC_MAX_FILE_BYTES,
    TransportSettings,
    incomplete_grace,
)

#: what a screen returns to take a file without reading its body: the file is removed and
#: ``receive`` returns the string (e.g. "stop", "late"); None reads the body
Screen = Callable[[Envelope, BinaryIO], str | None]


@dataclass
class Received:
    """A message file that passed every check."""

    envelope: Envelope
    message: Message
    name: str
    path: str
    size: int
    inode: int
    mtime_ns: int


class Endpoint:
    """``email``'s message files for app ``app_name`` on ``network``.

    ``on_arrival`` (called on the process's watcher thread when a file arrives) lets a
    worker pool serve the endpoint instead of a thread blocked in :meth:`wait`;
    ``on_refused`` is told about every file set aside.
    """

    def __init__(
        self,
        network: Network,
        email: str,
        app_name: str,
        *,
        settings: TransportSettings | None = None,
        on_arrival: Callable[[], None] | None = None,
        on_refused: Callable[[QuarantinedFile], None] | None = None,
    ) -> None:
        self.network = network
        self.email = validate_email(email)
        self.app_name = validate_name(app_name, "app name")
        self.settings = settings or TransportSettings.from_env()
        self.keys = MessageKeys(network, self.email)
        self.inbox = network.flwr_inbox(self.email, self.app_name)
        self.private_dir = network.flwr_private_dir(self.email, self.app_name)
        self.quarantine_dir = network.message_quarantine_dir(self.email, self.app_name)
        self.security_log = network.security_log(self.email, self.app_name)
        self.scratch = Scratch()
        self._on_arrival = on_arrival
        self._on_refused = on_refused
        self._peer_inboxes: dict[str, str] = {}
        #: names of refused files that could not be moved out of the inbox: skipped on later
        #: scans instead of being refused again on every one
        self._unmovable: set[str] = set()
        #: over a sync: files shorter than their header says, by name -> (first seen, last
        #: tried) on the monotonic clock; looked at again until complete or the grace ends
        synced = is_syftbox(network)
        self.incomplete_grace = incomplete_grace(synced)
        #: the largest file the sync carries (None: no limit on one local folder)
        self.sync_max_file = SYNC_MAX_FILE_BYTES if synced else None
        self._incomplete: dict[str, tuple[float, float]] = {}
        self._watcher: DirectoryWatcher | None = None

    # -- the inbox ---------------------------------------------------------------------------
    def open(self) -> Endpoint:
        """Start watching the inbox (before anything is sent: no reply is missed)."""
        if self._watcher is None:
            self._watcher = DirectoryWatcher(
                self.inbox, poll_interval=POLL_INTERVAL, on_arrival=self._on_arrival
            )
        return self

    def __enter__(self) -> Endpoint:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self.scratch.release()

    def files(self, *, scan: bool = False) -> list[os.DirEntry[str]] | list[InboxFile]:
        """The inbox files to read now: those that arrived since the last call, as the
        watcher names them, or the whole inbox when it cannot (at first, after lost events,
        when polling) or ``scan`` asks for it (what is there *now*: the watcher's thread may
        not have handed on a file written a moment ago). Files that were refused but could
        not be moved are left out."""
        watcher = self._watcher
        if watcher is None:
            raise RuntimeError(f"{self.email}'s endpoint for {self.app_name} is not open")
        names = watcher.arrivals()
        if names is None or scan:
            found: list = list_inbox(self.inbox)
        else:
            folder = os.fspath(self.inbox)
            found = [InboxFile(name, os.path.join(folder, name)) for name in names]
        if self._unmovable:
            found = [entry for entry in found if entry.name not in self._unmovable]
        if self._incomplete:
            found += self._due_incomplete({entry.name for entry in found})
        return found

    def _due_incomplete(self, listed: set[str]) -> list[InboxFile]:
        """The incomplete files due for another look (not already in ``listed``)."""
        now, folder = time.monotonic(), os.fspath(self.inbox)
        return [
            InboxFile(name, os.path.join(folder, name))
            for name, (_, tried) in self._incomplete.items()
            if name not in listed and now - tried >= INCOMPLETE_RETRY
        ]

    def has_arrivals(self) -> bool:
        """Whether something arrived since the last :meth:`files` (never blocks)."""
        if self._incomplete and self._due_incomplete(set()):
            return True
        return self._watcher is not None and self._watcher.pending()

    def wait(self, timeout: float | None) -> bool:
        """Block until a file arrives, :meth:`notify` or ``timeout``; True if woken."""
        watcher = self._watcher
        if watcher is None:
            raise RuntimeError(f"{self.email}'s endpoint for {self.app_name} is not open")
        if self._incomplete and (timeout is None or timeout > INCOMPLETE_RETRY):
            # wake up to look at them again
            return watcher.wait(INCOMPLETE_RETRY) or bool(self._due_incomplete(set()))
        return watcher.wait(timeout)

    def notify(self) -> None:
        """Wake a thread blocked in :meth:`wait` (from any thread)."""
        if self._watcher is not None:
            self._watcher.notify()

    # -- sending -----------------------------------------------------------------------------
    def inbox_of(self, peer: str) -> str:
        """``peer``'s inbox for this app, where messages to it are dropped."""
        inbox = self._peer_inboxes.get(peer)
        if inbox is None:
            inbox = str(self.network.flwr_inbox(peer, self.app_name))
            self._peer_inboxes[peer] = inbox
        return inbox

    def encode(
        self,
        message: Message,
        recipient: str,
        *,
        encrypt: bool | None = None,
        checksum_cache: ChecksumCache | None = None,
    ) -> EncodedMessage:
        """``message`` as a file to ``recipient``: authenticated, encrypted unless
        ``encrypt`` (default: the settings) says otherwise."""
        encoded = encode_message(
            message,
            sender=self.email,
            recipient=recipient,
            app_name=self.app_name,
            max_bytes=self.settings.max_message_bytes,
            keys=self.keys,
            encrypt=self.settings.encrypt if encrypt is None else encrypt,
            checksum_cache=checksum_cache,
            scratch=self.scratch,
        )
        if self.sync_max_file is not None and encoded.size > self.sync_max_file:
            self.scratch.done()
            raise SyncFileTooLargeError(
                f"the message to {recipient} is a {encoded.size / 2**20:.1f} MiB file, over "
                f"the {self.sync_max_file / 2**20:.0f} MiB a SyftBox client syncs (it would "
                "never arrive): send smaller arrays, e.g. fewer or lower-precision parameters"
            )
        return encoded

    def send(self, encoded: EncodedMessage, recipient: str) -> str:
        """Drop ``encoded`` into ``recipient``'s inbox; returns the file's path."""
        try:
            return write_message(self.inbox_of(recipient), encoded)
        finally:
            self.scratch.done()

    # -- receiving ---------------------------------------------------------------------------
    def receive(
        self,
        entry: os.DirEntry[str] | InboxFile,
        *,
        senders: Collection[str],
        screen: Screen,
        checksum_cache: ChecksumCache | None = None,
        check: Callable[[Message], None] | None = None,
    ) -> Received | str | None:
        """Read the inbox file ``entry``.

        Returns the :class:`Received` message; or what ``screen`` returned when it took the
        file without its body (the file is removed); or None when the file was refused (set
        aside, logged, reported to ``on_refused``) or is gone. ``screen`` runs once the
        header is authenticated and raises :class:`MessageFileError` to refuse; ``check``
        runs on the decoded message and may refuse it too.
        """
        name, path = entry.name, entry.path
        if not name.endswith(FILE_SUFFIX):
            self.refuse(path, MessageFileError("unexpected file name (not a message file)"))
            return None
        try:
            try:
                fd = open_regular(path)
            except UnsafeFileError as exc:  # a FIFO, folder, symlink or device: never followed
                raise MessageFileError(
                    f"not a regular file ({exc.problem})", kind="not-a-file"
                ) from None
            with open(fd, "rb") as f:
                stat = os.fstat(fd)
                envelope = read_envelope(
                    f,
                    name,
                    recipient=self.email,
                    app_name=self.app_name,
                    senders=senders,
                    max_bytes=self.settings.max_message_bytes,
                    keys=self.keys,
                )
                taken = screen(envelope, f)
                if taken is not None:
                    remove(path)
                    return taken
                segments = read_segments(
                    f, envelope, keys=self.keys, checksum_cache=checksum_cache, scratch=self.scratch
                )
            message = decode_message(envelope, segments)
            del segments
            if check is not None:
                check(message)
        except FileNotFoundError:
            self._incomplete.pop(name, None)  # deleted or renamed (by the sync): harmless
            return None
        except IncompleteMessageError as exc:
            if self._still_arriving(name):
                return None
            self.refuse(path, _late(exc, self.incomplete_grace))
            return None
        except MessageFileError as exc:
            self._incomplete.pop(name, None)
            self.refuse(path, exc)
            return None
        self._incomplete.pop(name, None)
        return Received(envelope, message, name, path, stat.st_size, stat.st_ino, stat.st_mtime_ns)

    def _still_arriving(self, name: str) -> bool:
        """Whether the incomplete file ``name`` may still be completed by the sync (within
        the grace time since it was first seen); it is then looked at again later."""
        if self.incomplete_grace <= 0:
            return False
        now = time.monotonic()
        first, _ = self._incomplete.get(name, (now, now))
        if now - first >= self.incomplete_grace:
            self._incomplete.pop(name, None)
            return False
        self._incomplete[name] = (first, now)
        return True

    def read_body(self, f: BinaryIO, envelope: Envelope) -> Message:
        """The message in the rest of an open file whose header was read (for a screen that
        must look inside, e.g. at a late reply's run id). Raises MessageFileError."""
        return decode_message(envelope, read_segments(f, envelope, keys=self.keys))

    def refuse(self, path: str, error: MessageFileError) -> QuarantinedFile | None:
        """Set a refused file aside (quarantine + security log); one that cannot be moved is
        skipped from then on. Nothing is moved unless the inbox is a plain folder of the
        party's datasite (not a symlink to somewhere else, e.g. its private area)."""
        refused = refuse(
            Path(path),
            error,
            quarantine_dir=self.quarantine_dir,
            log_path=self.security_log,
            receiver=self.email,
            move=is_plain_path(self.inbox, self.network.datasite(self.email)),
        )
        if refused is not None:
            if not refused.set_aside:
                self._unmovable.add(os.path.basename(path))
            if self._on_refused is not None:
                self._on_refused(refused)
        return refused


def _late(exc: IncompleteMessageError, grace: float) -> IncompleteMessageError:
    """``exc`` saying how long the file was waited for."""
    if grace <= 0:
        return exc
    return IncompleteMessageError(
        f"{exc.reason} (still incomplete after the sync grace of {grace:.0f} s, "
        "$SYFT_FLWR_INCOMPLETE_GRACE)",
        kind=exc.kind,
        sender=exc.sender,
    )
