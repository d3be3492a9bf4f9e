"""What a sandboxed job may use, and how the runner tells the job's trusted node about it.

The data owner sets :class:`SandboxLimits` per job (``run_private(job, limits=...)``) or per
dataset (:func:`save_dataset_limits`, kept in ``private/<owner>/datasets/<name>/limits.json``);
a job's own limits win, field by field. The runner hands the trusted node a
:class:`SandboxSpec` in ``$SYFT_FLWR_SANDBOX`` (JSON).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from syft_flwr.network.atomic import atomic_write_json
from syft_flwr.network.layout import Network
from syft_flwr.sandbox.errors import SandboxError

#: the runner's instructions to the trusted node (JSON of a SandboxSpec)
SANDBOX_ENV = "SYFT_FLWR_SANDBOX"
MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandboxed job; None means "not set here" (the runner lays a job's limits
    over the dataset's, over :data:`DEFAULT_LIMITS`; None there is "no limit of this kind").

    ``wall_seconds``: the sandbox's lifetime; ``cpu_seconds``: CPU time of each process;
    ``memory_bytes``: address space of each process and resident memory of all together;
    ``processes``: processes alive at once; ``output_bytes``: the output folder's size (and
    the largest file any process may write).
    """

    wall_seconds: float | None = None
    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    processes: int | None = None
    output_bytes: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise SandboxError(
                    f"sandbox limit {f.name} must be a positive number or None, not {value!r}"
                )

    def over(self, other: SandboxLimits | None) -> SandboxLimits:
        """These limits, with every field ``other`` sets (not None) taken from ``other``."""
        if other is None:
            return self
        return replace(self, **{k: v for k, v in asdict(other).items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxLimits:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SandboxError(f"unknown sandbox limits {unknown}; known: {sorted(known)}")
        return cls(**data)

    def describe(self) -> str:
        """One line, e.g. "wall 60 s, memory 512 MiB, processes 64"."""
        parts = []
        if self.wall_seconds:
            parts.append(f"wall {self.wall_seconds:g} s")
        if self.cpu_seconds:
            parts.append(f"cpu {self.cpu_seconds} s")
        if self.memory_bytes:
            parts.append(f"memory {self.memory_bytes / MiB:g} MiB")
        if self.processes:
            parts.append(f"processes {self.processes}")
        if self.output_bytes:
            parts.append(f"output {self.output_bytes / MiB:g} MiB")
        return ", ".join(parts) or "no limits"


#: what a job gets unless its dataset or the run says otherwise
DEFAULT_LIMITS = SandboxLimits(memory_bytes=4096 * MiB, processes=64, output_bytes=1024 * MiB)


@dataclass(frozen=True)
class SandboxSpec:
    """What the trusted node needs to start the job's sandbox."""

    data_dir: str
    output_dir: str
    scratch_dir: str
    limits: SandboxLimits
    report: str  # where the node writes why it ended the sandbox
    env: dict[str, str]  # the environment the app sees (already clean)
    forbidden: tuple[str, ...] = ()  # what no bound folder may contain (the owner's keys)

    def to_env(self) -> str:
        data = asdict(self)
        data["limits"] = self.limits.to_json()
        return json.dumps(data)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SandboxSpec | None:
        """The spec in ``$SYFT_FLWR_SANDBOX``, or None (not a sandboxed job)."""
        text = (os.environ if environ is None else environ).get(SANDBOX_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            data["limits"] = SandboxLimits.from_json(data["limits"])
            data["forbidden"] = tuple(data.get("forbidden", ()))
            return cls(**data)
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxError(
                f"${SANDBOX_ENV} is not a sandbox spec ({exc}); only the job runner sets it"
            ) from exc


def save_dataset_limits(network: Network, owner: str, dataset: str, limits: SandboxLimits) -> Path:
    """Keep ``limits`` for every job ``owner`` runs on ``dataset``; returns the file."""
    path = network.dataset_limits_path(owner, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, limits.to_json())
    return path


def load_dataset_limits(network: Network, owner: str, dataset: str) -> SandboxLimits | None:
    """The limits saved for ``dataset`` (None if the owner set none)."""
    path = network.dataset_limits_path(owner, dataset)
    if not path.is_file():
        return None
    try:
        return SandboxLimits.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise SandboxError(
            f"{path} does not hold sandbox limits ({exc}); save them again with "
            "syft_flwr.sandbox.save_dataset_limits"
        ) from exc
