"""What the crypto package raises. Each keeps the built-in base it always had, so
``except ValueError`` / ``except FileNotFoundError`` still catch them."""

from __future__ import annotations

from syft_flwr.errors import EXIT_USAGE, SyftFlwrError


class SignatureError(SyftFlwrError, ValueError):
    """A signature is missing, malformed, or not made by the party it claims."""


class PublicKeysNotFoundError(SyftFlwrError, FileNotFoundError):
    """The party never published keys (``datasites/<email>/public/keys.json`` is missing)."""

    exit_code = EXIT_USAGE  # the party has to join the network first


class PublicKeysInvalidError(SyftFlwrError, ValueError):
    """The party's published ``keys.json`` is unreadable, malformed or for another email."""

    exit_code = EXIT_USAGE  # the party has to publish its keys again


class PrivateKeysNotFoundError(SyftFlwrError, FileNotFoundError):
    """This machine holds no private key for the party (its keys were never created here)."""

    exit_code = EXIT_USAGE


class DecryptionError(SyftFlwrError, ValueError):
    """A sealed body cannot be opened: not for this key, altered, or not a sealed body."""


class MessageAuthError(SyftFlwrError, ValueError):
    """A message header's MAC is not the claimed sender's (or cannot be checked).

    ``sender`` is the sender the header claims; the transport turns this into a refusal.
    """

    def __init__(self, reason: str, *, sender: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sender = sender
