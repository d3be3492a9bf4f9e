"""What a run does first over SyftBox: open its inbox to the run's parties and, as the
aggregator, wait until the datasites' inboxes are open to it (else the server refuses the
first messages and they are lost)."""

from __future__ import annotations

from loguru import logger

from syft_flwr.config import Identity, ProjectConfig
from syft_flwr.errors import SyftFlwrError
from syft_flwr.syftbox.permissions import grant_run, wait_for_grants
from syft_flwr.syftbox.workspace import is_syftbox
from syft_flwr.transport.settings import DEFAULT_MSG_TIMEOUT, MSG_TIMEOUT_ENV, resolve_seconds


class InboxClosedError(SyftFlwrError, PermissionError):
    """A datasite's inbox never opened to the aggregator over SyftBox."""


def prepare_syftbox_run(identity: Identity, config: ProjectConfig, role: str) -> None:
    """Grant the run's parties this party's inbox; the aggregator then waits (up to the
    message timeout) for every datasite's grant to reach it through the sync."""
    network = identity.network
    if not is_syftbox(network):
        return
    grant_run(network, identity.email, config)
    if role != "aggregator":
        return
    timeout = resolve_seconds(None, MSG_TIMEOUT_ENV, DEFAULT_MSG_TIMEOUT, "message timeout")
    missing = wait_for_grants(network, config, identity.email, timeout)
    if missing:
        raise InboxClosedError(
            f"after {timeout:.0f} s the inboxes of {', '.join(missing)} are still closed to "
            f"{identity.email} on SyftBox: the data owner approves the job (which opens its "
            "inbox to the aggregator) and its SyftBox client must be running"
        )
    logger.info(f"{identity.email}: every datasite's inbox is open to it over SyftBox")
