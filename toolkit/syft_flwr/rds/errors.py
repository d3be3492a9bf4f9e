"""Errors of the RDS layer that a person can act on.

Each derives from :class:`syft_flwr.errors.SyftFlwrError` and keeps its built-in base, so
``except PermissionError`` (or ``LookupError``, ``ValueError``...) still catches it.
"""

from __future__ import annotations

from syft_flwr.errors import SyftFlwrError


class AuditLogTamperedError(SyftFlwrError, RuntimeError):
    """The audit log's hash chain is broken: a line was edited, removed or reordered."""


class JobNotFoundError(SyftFlwrError, LookupError, ValueError):
    """No job with that uid in the datasite's job inbox."""

    def __str__(self) -> str:  # LookupError would quote the message like a dict key
        return str(self.args[0]) if self.args else "job not found"


class JobRefusedError(JobNotFoundError, PermissionError):
    """The job was refused at intake (unsigned, forged, replayed, altered...): it never became
    a job. The data owner's ``session.job.refused()`` and audit log say why."""


class DatasetNotFoundError(SyftFlwrError, LookupError, ValueError):
    """No dataset with that name on the datasite."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "dataset not found"


class JobStateError(SyftFlwrError, RuntimeError):
    """The job is not in a status that allows the requested step (e.g. running a rejected job)."""


class JobRecordError(SyftFlwrError, ValueError):
    """The data owner's record of a job (``state.json``) does not parse: it was edited by hand
    or written by an incompatible version. Keep the file for investigation."""
