"""A party on the network (:func:`setup_rds_server`) and its sessions with datasites.

```python
do = setup_rds_server(email="do1@openmined.org", root_dir=Path("."))
do_admin = do.init_session(host="do1@openmined.org")   # the owner of the datasite: admin
ds = setup_rds_server(email="ds@openmined.org", root_dir=Path("."))
guest = ds.init_session(host="do1@openmined.org")      # anyone else: guest
```

While an admin session is open, the owner's heartbeat (``public/status.json``, role
``data owner``) says the owner is online; ``session.close()`` (or ``with``) ends it.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from syft_flwr.crypto import accept_key, create_party, show_fingerprints
from syft_flwr.network.layout import Network, validate_email
from syft_flwr.rds.audit import AuditLog
from syft_flwr.rds.client import RDSClient, owner_only
from syft_flwr.rds.code import DEFAULT_LIMITS, SubmissionLimits
from syft_flwr.rds.datasets import DatasetAPI
from syft_flwr.rds.guest_jobs import GuestJobs
from syft_flwr.rds.intake import DEFAULT_INTAKE, IntakePolicy
from syft_flwr.rds.jobs import JobRef, job_uid
from syft_flwr.rds.owner_jobs import OwnerJobs
from syft_flwr.rds.runner import DEFAULT_TIMEOUT, RunHandle
from syft_flwr.rds.store import JobStore
from syft_flwr.sandbox.limits import SandboxLimits, save_dataset_limits
from syft_flwr.syftbox.permissions import write_datasite_permissions
from syft_flwr.syftbox.workspace import is_syftbox

if TYPE_CHECKING:  # the monitor is imported only when an admin session starts (cheap imports)
    from syft_flwr.monitor.presence import OwnerHeartbeat

__all__ = ["RDSClient", "RDSServer", "Session", "setup_rds_server"]


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
    datasite's owner (``is_admin``), running jobs and reading the audit log.

    ``job`` is the role's jobs object: :class:`OwnerJobs` (over the owner's :class:`JobStore`,
    also ``store``) in the owner's session, :class:`GuestJobs` in anyone else's.

    An admin session keeps its owner's heartbeat running (one per owner and network in a
    process, see :mod:`syft_flwr.monitor.presence`) until :meth:`close`, the end of a ``with``
    block, its garbage collection or the interpreter's exit. A guest session publishes nothing.
    """

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
        self.is_admin = client.owns(host)
        self.store: JobStore | None = None
        self.audit: AuditLog | None = None
        self.job: OwnerJobs | GuestJobs
        if self.is_admin:
            self.store = JobStore(self.network, host)
            self.audit = AuditLog(self.network.audit_log_path(host), actor=host)
            self.job = OwnerJobs(client, limits, intake, self.store, self.audit)
        else:
            self.job = GuestJobs(client, host, limits, intake)
        self.jobs = self.job
        self.dataset = DatasetAPI(client, host, self.audit)
        self.heartbeat: OwnerHeartbeat | None = None
        if self.is_admin:
            from syft_flwr.monitor.presence import join_owner_heartbeat  # imported on first use

            self.heartbeat = join_owner_heartbeat(self, self.network, host)

    def close(self) -> None:
        """Stop keeping the owner's heartbeat running (the last session to leave marks the owner
        offline). The session still works; closing twice is harmless."""
        heartbeat, self.heartbeat = self.heartbeat, None
        if heartbeat is not None:
            heartbeat.leave(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def require_admin(self, action: str) -> None:
        """PermissionError naming the owner, unless this is an admin session."""
        if not self.is_admin:
            raise owner_only(self.host, self.client.email, action)

    def run_private(
        self,
        job: JobRef,
        blocking: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
        *,
        sandbox: bool = True,
        limits: SandboxLimits | None = None,
    ) -> RunHandle:
        """Run an approved job on the private data (owner only).

        ``blocking=True`` returns the finished run; ``blocking=False`` returns at once with a
        handle (``wait()``, ``poll()``, ``done``, ``returncode``) while a thread watches it.
        The job's code runs in a bubblewrap sandbox with ``limits`` (over the dataset's and the
        defaults); ``sandbox=False`` runs it with your rights, and the audit log says so.
        """
        return self._run(job, "private", blocking, timeout, env, sandbox, limits)

    def run_mock(
        self,
        job: JobRef,
        blocking: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: dict[str, str] | None = None,
        *,
        sandbox: bool = True,
        limits: SandboxLimits | None = None,
    ) -> RunHandle:
        """Run an approved job on the dataset's mock data (owner only); see run_private."""
        return self._run(job, "mock", blocking, timeout, env, sandbox, limits)

    def set_sandbox_limits(self, dataset: str, limits: SandboxLimits) -> None:
        """Limits for every job run on ``dataset`` from now on (owner only)."""
        self.require_admin("set sandbox limits")
        save_dataset_limits(self.network, self.host, dataset, limits)
        assert self.audit is not None
        self.audit.append("sandbox_limits_set", dataset=dataset, limits=limits.to_json())

    def _run(
        self,
        job: JobRef,
        kind: str,
        blocking: bool,
        timeout: float,
        env: dict[str, str] | None,
        sandbox: bool = True,
        limits: SandboxLimits | None = None,
    ) -> RunHandle:
        """OwnerJobs.run, with the owner's heartbeat naming the job while it runs."""
        self.require_admin("run jobs")
        jobs = self.job
        assert isinstance(jobs, OwnerJobs)
        heartbeat = self.heartbeat
        options = {"blocking": blocking, "timeout": timeout, "env": env}
        options.update(sandbox=sandbox, limits=limits)
        if heartbeat is None:
            return jobs.run(job, kind, **options)
        with heartbeat.running_job(job_uid(job)) as run:
            run.handle = jobs.run(job, kind, **options)
            return run.handle

    def key_fingerprints(self, peers: list[str] | None = None) -> str:
        """Print (and return) the fingerprints of the other parties' keys as this party pinned
        them and as published now: compare them with each party by another channel."""
        return show_fingerprints(self.network, self.client.email, peers)

    def accept_key(self, peer: str) -> str:
        """Trust ``peer``'s keys as published now (a rotation checked out of band, see
        :meth:`key_fingerprints`); returns the new fingerprint. The owner's audit log records it."""
        keys = accept_key(self.network, self.client.email, peer)
        if self.audit is not None:
            self.audit.append("key_accepted", peer=peer, fingerprint=keys.long_fingerprint)
        return keys.long_fingerprint

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
        from syft_flwr.monitor.presence import owner_heartbeat

        heartbeat = owner_heartbeat(network, email)  # this process's, if a session is open
        with heartbeat.paused() if heartbeat is not None else contextlib.nullcontext():
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
    identity = create_party(network, email)
    if is_syftbox(network):
        write_datasite_permissions(network, email)
    return RDSServer(RDSClient(email=email, network=network, identity=identity), limits, intake)
