"""The one error a message reader raises for a file it refuses."""

from __future__ import annotations

from syft_flwr.errors import SyftFlwrError

#: what a refusal was about; ``security.jsonl`` and the reports count refusals by kind
KINDS = (
    "malformed",  # not a message file of this format (magic, version, header, truncation)
    "too-large",  # over max_message_bytes
    "corrupted",  # a body checksum or tag does not match: altered or damaged after writing
    "wrong-recipient",  # addressed to another party
    "wrong-app",  # for another app
    "wrong-sender",  # from a party that may not send it (not the aggregator, not the asked)
    "unauthenticated",  # no MAC
    "bad-mac",  # the MAC is not the claimed sender's (forged, altered, or another party's)
    "expired",  # written longer ago than the message TTL (or its Flower TTL ran out)
    "future",  # dated in the future beyond the allowed clock skew
    "replay",  # a message id already answered, or a reply already received
    "unexpected",  # a reply to nothing this party asked, a request where a reply belongs
    "not-a-file",  # a FIFO, folder, symlink, socket or device in an inbox (never followed)
)


class MessageFileError(SyftFlwrError, ValueError):
    """A message file failed validation.

    ``reason`` says why in words, ``kind`` (one of :data:`KINDS`) what sort of refusal it is,
    ``sender`` the sender the file claims, when its header could be read.
    """

    def __init__(self, reason: str, *, kind: str = "malformed", sender: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.sender = sender


class IncompleteMessageError(MessageFileError):
    """The file is shorter than its prefix or header says: a sync may still be writing it.
    A reader over a sync leaves it in place for a grace time before refusing it."""


class SyncFileTooLargeError(SyftFlwrError, ValueError):
    """A message file larger than the file sync carries (SyftBox 0.4.0: 10 MiB)."""
