"""Sessions, datasets and jobs on a datasite network (remote data science).

A data owner publishes datasets (mock part public, private part kept), reviews the jobs data
scientists submit, runs the approved ones on the private data, and shares results; every
decision lands in a hash-chained audit log. Start with :func:`setup_rds_server`.
"""

from syft_flwr.rds.audit import AuditLog
from syft_flwr.rds.code import DEFAULT_LIMITS, SubmissionLimits, code_sha256
from syft_flwr.rds.datasets import Dataset, DatasetAPI
from syft_flwr.rds.errors import (
    AuditLogTamperedError,
    DatasetNotFoundError,
    JobNotFoundError,
    JobRecordError,
    JobRefusedError,
    JobStateError,
)
from syft_flwr.rds.guest_jobs import GuestJobs
from syft_flwr.rds.intake import (
    DEFAULT_INTAKE,
    REFUSAL_REASONS,
    IntakePolicy,
    SubmissionIncompleteError,
    SubmissionRefusedError,
    validate_submission,
)
from syft_flwr.rds.jobs import Job
from syft_flwr.rds.owner_jobs import OwnerJobs
from syft_flwr.rds.records import JobRecord, JobStatus, RunRecord
from syft_flwr.rds.runner import RunHandle
from syft_flwr.rds.server import RDSClient, RDSServer, Session, setup_rds_server
from syft_flwr.rds.signed import ResultsTamperedError
from syft_flwr.rds.store import JobStore

__all__ = [
    "DEFAULT_INTAKE",
    "DEFAULT_LIMITS",
    "REFUSAL_REASONS",
    "AuditLog",
    "AuditLogTamperedError",
    "Dataset",
    "DatasetAPI",
    "DatasetNotFoundError",
    "GuestJobs",
    "IntakePolicy",
    "Job",
    "JobNotFoundError",
    "JobRecord",
    "JobRecordError",
    "JobRefusedError",
    "JobStateError",
    "JobStatus",
    "JobStore",
    "OwnerJobs",
    "RDSClient",
    "RDSServer",
    "ResultsTamperedError",
    "RunHandle",
    "RunRecord",
    "Session",
    "SubmissionIncompleteError",
    "SubmissionLimits",
    "SubmissionRefusedError",
    "code_sha256",
    "setup_rds_server",
    "validate_submission",
]
