"""What the ServerApp saves each round, in ``weights/``, and reads back on ``--resume``.

```
weights/
  round-<N>.npz          the global model after round N (round 0: the initial model)
  metrics.json           one entry per round: loss, accuracy, auc, examples, participants
  preprocessing.json     the federated imputation/standardisation statistics
  strategy/round-<N>.npz the strategy's own state after round N (FedAdam's moments)
  checkpoint.json        the last complete round, written last
```

Every file is written whole (temporary name, then rename). ``checkpoint.json`` is written after
everything else of a round, so a stop at any moment leaves the last *complete* round to resume
from; entries of a round the checkpoint does not cover are dropped on resume, so no round is
counted twice.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fl_diabetes_prediction.preprocessing import FeatureStats

CHECKPOINT = "checkpoint.json"
METRICS = "metrics.json"
PREPROCESSING = "preprocessing.json"
STRATEGY_DIR = "strategy"


def _atomic_write(path: Path, write: Any, binary: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda fh: json.dump(data, fh, indent=2, allow_nan=False), binary=False)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    _atomic_write(path, lambda fh: np.savez(fh, **arrays), binary=True)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@dataclass
class Checkpoint:
    """The state of a run after its last complete round."""

    round: int
    params: dict[str, np.ndarray]
    strategy_state: dict[str, np.ndarray]
    stats: FeatureStats
    metrics: list[dict[str, Any]]
    info: dict[str, Any]


class RunStore:
    """The ``weights/`` folder of one project."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def round_path(self, server_round: int) -> Path:
        return self.folder / f"round-{server_round}.npz"

    def strategy_path(self, server_round: int) -> Path:
        return self.folder / STRATEGY_DIR / f"round-{server_round}.npz"

    def saved_rounds(self) -> list[int]:
        rounds = []
        for path in self.folder.glob("round-*.npz"):
            suffix = path.stem.removeprefix("round-")
            if suffix.isdigit():
                rounds.append(int(suffix))
        return sorted(rounds)

    def reset(self) -> bool:
        """Empty the folder for a fresh run; True if there was something to replace."""
        existed = self.folder.exists() and any(self.folder.iterdir())
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        return existed

    def save_preprocessing(self, stats: FeatureStats) -> None:
        write_json(self.folder / PREPROCESSING, stats.to_dict())

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.folder / METRICS
        if not path.is_file():
            return []
        return json.loads(path.read_text(encoding="utf-8"))

    def save_round(
        self,
        server_round: int,
        params: dict[str, np.ndarray],
        strategy_state: dict[str, np.ndarray],
        entry: dict[str, Any],
        info: dict[str, Any],
    ) -> None:
        """Save round ``server_round`` and only then mark it complete."""
        if strategy_state:
            write_npz(self.strategy_path(server_round), strategy_state)
        write_npz(self.round_path(server_round), params)
        metrics = [m for m in self.read_metrics() if m["round"] < server_round]
        write_json(self.folder / METRICS, [*metrics, entry])
        write_json(self.folder / CHECKPOINT, {**info, "round": server_round})

    def load(self) -> Checkpoint | None:
        """The last complete round, or None when there is nothing to resume."""
        path = self.folder / CHECKPOINT
        if not path.is_file():
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
        last = int(info["round"])
        weights = self.round_path(last)
        prep = self.folder / PREPROCESSING
        for needed in (weights, prep):
            if not needed.is_file():
                raise FileNotFoundError(
                    f"{needed} is missing although {path} says round {last} is complete; "
                    "start a fresh run (without --resume)"
                )
        strategy_file = self.strategy_path(last)
        return Checkpoint(
            round=last,
            params=read_npz(weights),
            strategy_state=read_npz(strategy_file) if strategy_file.is_file() else {},
            stats=FeatureStats.from_dict(json.loads(prep.read_text(encoding="utf-8"))),
            metrics=[m for m in self.read_metrics() if m["round"] <= last],
            info=info,
        )

    def drop_rounds_after(self, server_round: int) -> None:
        """Remove files of rounds a stopped run wrote beyond its last complete round."""
        for later in self.saved_rounds():
            if later > server_round:
                self.round_path(later).unlink(missing_ok=True)
                self.strategy_path(later).unlink(missing_ok=True)
        metrics = self.read_metrics()
        kept = [m for m in metrics if m["round"] <= server_round]
        if len(kept) != len(metrics):
            write_json(self.folder / METRICS, kept)
