"""The data owner's job store: one :class:`JobRecord` per accepted job, in its private folder.

```
<private>/rds/jobs/<job_id>/state.json      the JobRecord (status, pinned hash, history, runs)
<private>/rds/jobs/<job_id>/runs/<n>/       code/ (verified copy), stdout.log, stderr.log, output/
<private>/rds/seen/<job_id>                  marker: this job id was accepted once (replay guard)
<private>/rds/refused/<key>.json            why an inbox entry was refused at intake
<private>/rds/quarantine/<key>/             the refused entry itself, moved out of the inbox
```

Every path comes from :class:`~syft_flwr.network.layout.Network`. Nothing written by another
party (the inbox's request or status mirror) is ever taken as a job's status; the inbox only
tells the data owner that a job exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syft_flwr.network.atomic import atomic_write_json, read_json
from syft_flwr.network.files import file_lock
from syft_flwr.network.layout import Network, validate_name
from syft_flwr.rds._files import utc_now
from syft_flwr.rds.errors import JobRecordError
from syft_flwr.rds.records import JobRecord


class JobStore:
    """Loads, creates and updates the :class:`JobRecord` of each job of ``owner``, each
    read-modify-write under the job's lock."""

    def __init__(self, network: Network, owner: str):
        self.network = network
        self.owner = owner

    # -- paths ---------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.network.owner_jobs_dir(self.owner)

    @property
    def refused_dir(self) -> Path:
        return self.network.refused_jobs_dir(self.owner)

    @property
    def quarantine_dir(self) -> Path:
        return self.network.quarantine_dir(self.owner)

    def job_dir(self, job_id: str) -> Path:
        return self.network.owner_job_dir(self.owner, job_id)

    def state_path(self, job_id: str) -> Path:
        return self.network.job_state_path(self.owner, job_id)

    def run_dir(self, job_id: str, n: int) -> Path:
        return self.network.job_run_dir(self.owner, job_id, n)

    def seen_path(self, job_id: str) -> Path:
        """A marker kept when a job is accepted, even if its records are removed later."""
        return self.network.seen_jobs_dir(self.owner) / validate_name(job_id, "job id")

    def refused_path(self, key: str) -> Path:
        return self.refused_dir / f"{validate_name(key, 'refusal key')}.json"

    # -- job records ---------------------------------------------------------------------------
    def job_ids(self) -> list[str]:
        """Every job the owner has a record of (even if its inbox folder is gone)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "state.json").exists())

    def load(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, None if there is none; JobRecordError if it does not parse."""
        path = self.state_path(job_id)
        if not path.exists():
            return None
        try:
            data = read_json(path)
        except ValueError as exc:
            raise JobRecordError(
                f"{path} is not valid JSON ({exc}); keep it for investigation"
            ) from exc
        return JobRecord.from_json(data, where=str(path))

    def create(self, record: JobRecord) -> None:
        """Write a new record and mark its id seen (the caller holds :meth:`locked`)."""
        atomic_write_json(self.state_path(record.job_id), record.to_json())
        atomic_write_json(
            self.seen_path(record.job_id), {"job_id": record.job_id, "seen_at": utc_now()}
        )

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Apply ``change`` to the record under the job's lock and write it back.

        If ``change`` raises, nothing is written.
        """
        with self.locked(job_id):
            record = self.load(job_id)
            if record is None:
                raise FileNotFoundError(f"no record of job {job_id} in {self.root}")
            change(record)
            record.updated_at = utc_now()
            atomic_write_json(self.state_path(job_id), record.to_json())
            return record

    @contextmanager
    def locked(self, job_id: str) -> Iterator[None]:
        with file_lock(self.job_dir(job_id) / ".lock"):
            yield

    # -- refusals ------------------------------------------------------------------------------
    def is_refused(self, key: str) -> bool:
        return self.refused_path(key).exists()

    def load_refused(self, key: str) -> dict[str, Any] | None:
        """The refusal record of ``key`` (a job id or ``entry-<hash>``), None if not refused."""
        path = self.refused_path(key)
        return read_json(path) if path.exists() else None

    def save_refused(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.refused_path(record["key"]), record)

    def refused_records(self) -> list[dict[str, Any]]:
        """Every refusal record, oldest first."""
        if not self.refused_dir.is_dir():
            return []
        out = [
            read_json(path)
            for path in sorted(self.refused_dir.glob("*.json"))
            if not path.name.startswith(".")
        ]
        return sorted(out, key=lambda r: (r.get("refused_at", ""), r.get("key", "")))

    @contextmanager
    def intake_locked(self) -> Iterator[None]:
        """Serialises the refusal of inbox entries that are not named like a job id."""
        with file_lock(self.network.rds_private_dir(self.owner) / ".intake.lock"):
            yield
