"""The owner-signed status mirror in each job's inbox folder: what the submitter reads.

The mirror only tells the submitter what the owner's :class:`JobRecord` says; the owner never
reads its status back from it. It is written through a descriptor of the inbox folder opened
one folder at a time from the datasite down, so a symlink swapped in for the job's folder (or
for the jobs inbox itself) cannot redirect the write.
"""

from __future__ import annotations

import os
from typing import Any

from loguru import logger

from syft_flwr.config import Identity
from syft_flwr.network.layout import Network
from syft_flwr.network.safe_read import open_plain_dir
from syft_flwr.rds._files import utc_now, write_json_at
from syft_flwr.rds.records import JobRecord, JobStatus
from syft_flwr.rds.signed import STATUS_FILE, mirror_says, status_document


class StatusMirror:
    """Writes the signed ``status.json`` of ``host``'s jobs, signed with ``identity``."""

    def __init__(self, network: Network, host: str, identity: Identity):
        self.network = network
        self.host = host
        self.identity = identity
        self._warned: set[str] = set()

    def publish(self, record: JobRecord) -> None:
        """Tell the submitter the record's status; a missing or replaced folder is skipped."""
        fields = {"status": record.status, "reason": record.reason, "runs": len(record.runs)}
        try:
            self._write(record.job_id, fields)
        except FileNotFoundError:
            pass  # the inbox folder is gone: nobody to tell
        except OSError as exc:  # a symlink or a file in its place
            if record.job_id not in self._warned:
                self._warned.add(record.job_id)
                logger.warning(f"not writing the status of job {record.job_id}: {exc}")

    def sync(self, record: JobRecord) -> None:
        """Rewrite the mirror unless it is the owner's and says what the record says."""
        uid = record.job_id
        path = self.network.job_inbox_dir(self.host, uid) / STATUS_FILE
        if not mirror_says(self.network, self.host, uid, path, record.status, record.reason):
            self.publish(record)

    def tombstone(self, job_id: str, message: str) -> None:
        """Tell the submitter its entry was refused (OSError if the folder cannot take it)."""
        self._write(job_id, {"status": str(JobStatus.REFUSED), "reason": message})

    def _write(self, job_id: str, fields: dict[str, Any]) -> None:
        payload = {"job_id": job_id, "updated_at": utc_now(), **fields}
        fd = open_plain_dir(
            self.network.job_inbox_dir(self.host, job_id), self.network.datasite(self.host)
        )
        try:
            write_json_at(fd, STATUS_FILE, status_document(self.identity, payload))
        finally:
            os.close(fd)
