"""Every path of the network in one place.

```
<root_dir>/<key>/
  datasites/<email>/public/datasets/<name>/     metadata, README, mock/
  datasites/<email>/public/status.json          heartbeat
  datasites/<email>/public/keys.json            the party's public keys
  datasites/<email>/app_data/rds/jobs/<job_id>/ jobs submitted TO this datasite
  datasites/<email>/app_data/flwr/<app>/inbox/  Flower messages dropped for this party
  private/<email>/                              never shared: identity, data, runs, audit log
  private/<email>/datasets/<name>/              where a dataset's private data is
  private/<email>/rds/                          the data owner's job records and audit log
  private/<email>/keys/                         the party's private keys
  private/<email>/runs/<run_id>.json            a run the party aggregates (monitor)
  private/<email>/flwr/<app>/security.jsonl     every message file the party refused
  private/<email>/trust/keys/<peer>.json        the peer's public keys pinned at first contact
  private/<email>/trust/sequence                the last sequence number the party signed
  private/<email>/trust/seen/<signer>.json      the newest sequence seen per signer and topic
  private/<email>/rds/jobs/<job_id>/submitted/  the job's files copied at intake (reviewed = run)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_EMAIL = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SECURITY_LOG = "security.jsonl"
PUBLIC_KEYS_FILE = "keys.json"
RUNS_FOLDER = "runs"


def validate_email(email: str) -> str:
    """Return ``email`` if it is a plain address usable as a folder name, else ValueError."""
    if not isinstance(email, str) or not _EMAIL.fullmatch(email) or ".." in email:
        raise ValueError(
            f"{email!r} is not a valid datasite email: use a plain address such as "
            "'do1@openmined.org' (letters, digits, '.', '_', '-', '+'; no slashes or '..')"
        )
    return email


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component, else ValueError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"{what} {name!r} is not allowed: use letters, digits, '.', '_' or '-' "
            "(at most 128 characters, no slashes, no '..')"
        )
    return name


@dataclass(frozen=True)
class Network:
    """One network: the folder ``<root_dir>/<key>`` that a file sync shares between parties."""

    root: Path

    @classmethod
    def at(cls, root_dir: Path | str, key: str = "local_syftbox_network") -> Network:
        validate_name(key, "network key")
        return cls(Path(root_dir).expanduser().resolve() / key)

    # -- shared part ---------------------------------------------------------------------------
    @property
    def datasites_dir(self) -> Path:
        return self.root / "datasites"

    def datasite(self, email: str) -> Path:
        return self.datasites_dir / validate_email(email)

    def public_dir(self, email: str) -> Path:
        return self.datasite(email) / "public"

    def status_path(self, email: str) -> Path:
        return self.public_dir(email) / "status.json"

    def public_keys_path(self, email: str) -> Path:
        """``public/keys.json``: the public keys every other party reads."""
        return self.public_dir(email) / PUBLIC_KEYS_FILE

    def datasets_dir(self, email: str) -> Path:
        return self.public_dir(email) / "datasets"

    def dataset_dir(self, email: str, name: str) -> Path:
        return self.datasets_dir(email) / validate_name(name, "dataset name")

    def jobs_dir(self, email: str) -> Path:
        return self.datasite(email) / "app_data" / "rds" / "jobs"

    def job_inbox_dir(self, email: str, job_id: str) -> Path:
        """``jobs_dir(email)/<job_id>``: one job as its submitter wrote it (code/, request.json)."""
        return self.jobs_dir(email) / validate_name(job_id, "job uid")

    def flwr_dir(self, email: str, app_name: str) -> Path:
        return self.datasite(email) / "app_data" / "flwr" / validate_name(app_name, "app name")

    def flwr_inbox(self, email: str, app_name: str) -> Path:
        """Where Flower messages addressed to ``email`` for ``app_name`` are dropped."""
        return self.flwr_dir(email, app_name) / "inbox"

    def datasite_emails(self) -> list[str]:
        if not self.datasites_dir.is_dir():
            return []
        return sorted(p.name for p in self.datasites_dir.iterdir() if p.is_dir())

    # -- private part (never synced) -----------------------------------------------------------
    def private_dir(self, email: str) -> Path:
        return self.root / "private" / validate_email(email)

    def identity_path(self, email: str) -> Path:
        return self.private_dir(email) / "identity.json"

    def private_keys_dir(self, email: str) -> Path:
        """``private/<email>/keys/``: the party's private keys (never shared)."""
        return self.private_dir(email) / "keys"

    def run_registrations_dir(self, email: str) -> Path:
        """``private/<email>/runs/``: where the runs ``email`` aggregates are registered."""
        return self.private_dir(email) / RUNS_FOLDER

    def run_registration_path(self, email: str, run_id: int | str) -> Path:
        return self.run_registrations_dir(email) / f"{validate_name(str(run_id), 'run id')}.json"

    def run_registration_paths(self, run_id: int | str | None = None) -> list[Path]:
        """The registrations of every party's runs (or of run ``run_id`` only), sorted."""
        name = "*" if run_id is None else validate_name(str(run_id), "run id")
        return sorted((self.root / "private").glob(f"*/{RUNS_FOLDER}/{name}.json"))

    def flwr_private_dir(self, email: str, app_name: str) -> Path:
        """``private/<email>/flwr/<app>/``: a party's own records for an app."""
        return self.private_dir(email) / "flwr" / validate_name(app_name, "app name")

    def security_log(self, email: str, app_name: str) -> Path:
        """Every message file ``email`` refused for ``app_name`` (JSON lines)."""
        return self.flwr_private_dir(email, app_name) / SECURITY_LOG

    def message_quarantine_dir(self, email: str, app_name: str) -> Path:
        """Where ``email`` sets aside the message files of ``app_name`` it refused."""
        return self.flwr_private_dir(email, app_name) / "quarantine"

    def answered_log(self, email: str, app_name: str) -> Path:
        """The ids of the messages ``email``'s node answered for ``app_name``."""
        return self.flwr_private_dir(email, app_name) / "answered.log"

    def node_lock(self, email: str, app_name: str) -> Path:
        """Held by the one node that serves ``email``'s inbox for ``app_name``."""
        return self.flwr_private_dir(email, app_name) / "node.lock"

    def security_logs(self, email: str) -> list[Path]:
        """The security logs of all of ``email``'s apps."""
        return sorted((self.private_dir(email) / "flwr").glob(f"*/{SECURITY_LOG}"))

    # -- trust: pinned keys and sequence numbers -----------------------------------------------
    def trust_dir(self, email: str) -> Path:
        """``private/<email>/trust/``: pinned keys and sequence numbers."""
        return self.private_dir(email) / "trust"

    def pinned_keys_dir(self, email: str) -> Path:
        return self.trust_dir(email) / "keys"

    def pinned_key_path(self, email: str, peer: str) -> Path:
        """The public keys of ``peer`` that ``email`` pinned at first contact."""
        return self.pinned_keys_dir(email) / f"{validate_email(peer)}.json"

    def sequence_path(self, email: str) -> Path:
        """The last sequence number ``email`` put in a signed document."""
        return self.trust_dir(email) / "sequence"

    def seen_sequences_path(self, email: str, signer: str) -> Path:
        """The newest sequence number ``email`` accepted from ``signer``, per topic."""
        return self.trust_dir(email) / "seen" / f"{validate_email(signer)}.json"

    def private_dataset_dir(self, email: str, name: str) -> Path:
        """``private/<email>/datasets/<name>/``: where the dataset's private data is recorded."""
        return self.private_dir(email) / "datasets" / validate_name(name, "dataset name")

    # -- a data owner's job records (private) --------------------------------------------------
    def rds_private_dir(self, email: str) -> Path:
        """``private/<email>/rds/``: the owner's job records, refusals and audit log."""
        return self.private_dir(email) / "rds"

    def audit_log_path(self, email: str) -> Path:
        return self.rds_private_dir(email) / "audit.jsonl"

    def owner_jobs_dir(self, email: str) -> Path:
        """One folder per job the owner accepted: ``state.json`` and ``runs/<n>/``."""
        return self.rds_private_dir(email) / "jobs"

    def owner_job_dir(self, email: str, job_id: str) -> Path:
        return self.owner_jobs_dir(email) / validate_name(job_id, "job id")

    def job_state_path(self, email: str, job_id: str) -> Path:
        """The owner's authoritative record of the job."""
        return self.owner_job_dir(email, job_id) / "state.json"

    def submitted_code_dir(self, email: str, job_id: str) -> Path:
        """The job's code as copied from the inbox at intake: what is reviewed and run."""
        return self.owner_job_dir(email, job_id) / "submitted" / "code"

    def job_run_dir(self, email: str, job_id: str, run: int) -> Path:
        """Run ``run`` of the job: code/ (verified copy), stdout.log, stderr.log, output/."""
        return self.owner_job_dir(email, job_id) / "runs" / str(int(run))

    def job_scratch_dir(self, email: str, job_id: str, run: int) -> Path:
        """The sandbox's writable scratch folder (its HOME and /tmp) for run ``run``."""
        return self.job_run_dir(email, job_id, run) / "scratch"

    def sandbox_report_path(self, email: str, job_id: str, run: int) -> Path:
        """Why the sandbox of run ``run`` was ended, written by the job's trusted node."""
        return self.job_run_dir(email, job_id, run) / "sandbox.json"

    def dataset_limits_path(self, email: str, name: str) -> Path:
        """The owner's sandbox limits for jobs on dataset ``name``."""
        return self.private_dataset_dir(email, name) / "limits.json"

    def seen_jobs_dir(self, email: str) -> Path:
        """Markers of every job id ever accepted (the replay guard)."""
        return self.rds_private_dir(email) / "seen"

    def refused_jobs_dir(self, email: str) -> Path:
        """Why each refused inbox entry was refused (``<key>.json``)."""
        return self.rds_private_dir(email) / "refused"

    def quarantine_dir(self, email: str) -> Path:
        """The refused inbox entries themselves, moved out of the inbox."""
        return self.rds_private_dir(email) / "quarantine"
