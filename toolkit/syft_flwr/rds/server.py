"""A party on the network (:func:`setup_rds_server`) and its sessions with datasites.

```python
do = setup_rds_server(email="do1@openmined.org", root_dir=Path("."))
do_admin = do.init_session(host="do1@openmined.org")   # the owner of the datasite: admin
ds = setup_rds_server(email="ds@openmined.org", root_dir=Path("."))
guest = ds.init_session(host="do1@openmined.org")      # anyone else: guest
```
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from syft_flwr.config import Identity
from syft_flwr.network.layout import Network, validate_email
from syft_flwr.rds.audit import AuditLog
from syft_flwr.rds.code import DEFAULT_LIMITS, SubmissionLimits
from syft_flwr.rds.datasets import DatasetAPI
from syft_flwr.rds.intake import DEFAULT_INTAKE, IntakePolicy
from syft_flwr.rds.jobs import JobAPI, JobRef
from syft_flwr.rds.runner import DEFAULT_TIMEOUT, RunHandle, start_run
from syft_flwr.rds.state import JobStateStore


@dataclass(frozen=True)
class RDSClient:
    """Who this party is: its email, its network and its identity file."""

    email: str
    network: Network
    identity: Identity

    @property
    def config_path(self) -> Path:
        """The identity file (what jobs receive as ``SYFTBOX_CLIENT_CONFIG_PATH``)."""
        return self.identity.path

    @property
    def datasite_path(self) -> Path:
        return self.network.datasite(self.email)

    @property
    def private_path(self) -> Path:
        return self.network.private_dir(self.email)


class RDSServer:
    """One party on the network; open sessions with datasites through :meth:`init_session`."""

    def __init__(
        self,
        client: RDSClient,
        limits: SubmissionLimits = DEFAULT_LIMITS,
        intake: IntakePolicy = DEFAULT_INTAKE,
    ):
        self.client = client
        self.limits = limits
        self.intake = intake

    @property
    def email(self) -> str:
        return self.client.email

    @property
    def network(self) -> Network:
        return self.client.network

    def init_session(self, host: str) -> Session:
        """A session with the datasite of ``host``: admin if it is this party's own."""
        validate_email(host)
        if not self.network.datasite(host).is_dir():
            known = ", ".join(self.network.datasite_emails()) or "none yet"
            raise FileNotFoundError(
                f"no datasite {host!r} on the network {self.network.root} (datasites: {known}); "
                f"its owner must run setup_rds_server(email={host!r}, ...) with the same "
                "root_dir and key first"
            )
        return Session(self.client, host, self.limits, self.intake)

    def __repr__(self) -> str:
        return f"RDSServer(email={self.email!r}, network={str(self.network.root)!r})"


class Session:
    """A party's view of one datasite: ``dataset``, ``job`` (alias ``jobs``), and, for the
    datasite's owner (``is_admin``), running jobs and reading the audit log."""

    def __init__(
        self,
        client: RDSClient,
        host: str,
        limits: SubmissionLimits = DEFAULT_LIMITS,
        intake: IntakePolicy = DEFAULT_INTAKE,
    ):
        self.client = client
        self.host = host
        self.network = client.network
        self.limits = limits
        self.intake = intake
        self.is_admin = client.email == host
        self.store = JobStateStore(self.network, host) if self.is_admin else None
        self.audit = (
            AuditLog(self.network.private_dir(host) / "rds" / "audit.jsonl", actor=host)
            if self.is_admin
            else None
        )
        self.dataset = DatasetAPI(self)
        self.job = JobAPI(self)
        self.jobs = self.job

    def require_admin(self, action: str) -> None:
        if not self.is_admin:
            raise PermissionError(
                f"only the owner of the datasite, {self.host}, can {action}; you are "
                f"{self.client.email} (a guest). Ask {self.host} to do it"
            )

    def run_private(
        self,
        job: JobRef,
        blocking: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> RunHandle:
        """Run an approved job on the private data (owner only).

        ``blocking=True`` returns the finished run; ``blocking=False`` returns at once with a
        handle (``wait()``, ``poll()``, ``done``, ``returncode``) while a thread watches it.
        """
        self.require_admin("run jobs")
        return start_run(self, job, "private", blocking=blocking, timeout=timeout, env=env)

    def run_mock(
        self,
        job: JobRef,
        blocking: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> RunHandle:
        """Run an approved job on the dataset's mock data (owner only); see run_private."""
        self.require_admin("run jobs")
        return start_run(self, job, "mock", blocking=blocking, timeout=timeout, env=env)

    def audit_log(self) -> list[dict[str, Any]]:
        """Every audit entry, oldest first; AuditLogTamperedError if the chain is broken."""
        self.require_admin("read the audit log")
        assert self.audit is not None
        return self.audit.entries()

    def __repr__(self) -> str:
        role = "admin" if self.is_admin else "guest"
        return f"Session(host={self.host!r}, user={self.client.email!r}, {role})"


def setup_rds_server(
    email: str,
    root_dir: Path | str = Path("."),
    key: str = "local_syftbox_network",
    reset: bool = False,
    limits: SubmissionLimits = DEFAULT_LIMITS,
    intake: IntakePolicy = DEFAULT_INTAKE,
) -> RDSServer:
    """Join (or create) the network ``<root_dir>/<key>`` as ``email``.

    Creates the party's datasite, private folder, identity file and keys (an Ed25519 key to
    sign its job submissions, an X25519 key to receive encrypted messages; the public halves
    go to ``public/keys.json``). An existing party keeps its keys, datasets and jobs.
    ``reset=True`` first deletes this party's datasite and private folder, keys included (and
    nothing of any other party): its pending submissions then no longer verify.
    ``limits`` bound the code of submissions; ``intake`` is how this party, as a data owner,
    judges them (signature age, clock skew, sync grace period).
    """
    validate_email(email)
    network = Network.at(root_dir, key)
    if reset:
        for folder in (network.datasite(email), network.private_dir(email)):
            if folder.exists():
                shutil.rmtree(folder)
        logger.info(f"reset {email} on {network.root}")
    for folder in (
        network.public_dir(email),
        network.datasets_dir(email),
        network.jobs_dir(email),
        network.private_dir(email),
    ):
        folder.mkdir(parents=True, exist_ok=True)
    identity = Identity.create(network, email)
    return RDSServer(RDSClient(email=email, network=network, identity=identity), limits, intake)
