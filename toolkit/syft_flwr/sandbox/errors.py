"""Errors of the job sandbox."""

from __future__ import annotations

from syft_flwr.errors import SyftFlwrError

INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install "
    "bubblewrap`), or run the job unsandboxed on purpose with run_private(job, sandbox=False) "
    "(the audit log records it)"
)


class SandboxError(SyftFlwrError, RuntimeError):
    """The sandbox could not be set up or used as asked."""


class BubblewrapMissingError(SandboxError):
    """bubblewrap (``bwrap``) is not installed or does not work here."""


class SandboxDied(SandboxError):
    """The sandboxed ClientApp ended (a limit, a crash); ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(f"the sandboxed ClientApp ended: {reason}")
        self.reason = reason
