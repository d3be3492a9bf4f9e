"""The training figure of a run: loss, accuracy and AUC per round, from its RoundMetrics.

:func:`write_training_figures` draws ``<project>/runs/<run_id>/metrics.png`` and, when the
project keeps a ``weights/`` folder (the FL example app), ``weights/metrics.png`` beside its
``metrics.json``. The values are those of the run's events, as every other view shows them.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

from syft_flwr.monitor.runs import run_dir

FIGURE = "metrics.png"
#: the panels, in order: (metric names that fill it, title); a panel no round reports is left out
PANELS = (
    (("loss", "train-loss"), "loss"),
    (("accuracy",), "accuracy"),
    (("auc",), "AUC (ROC)"),
)

LABELS = {"loss": "evaluation loss", "train-loss": "training loss"}


def training_png(metrics: Mapping[int, Mapping[str, float]], path: Path, *, title: str) -> Path:
    """Draw ``metrics`` (server round -> {name: value}) into ``path``, written whole."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rounds = sorted(metrics)
    panels = [
        (names, label)
        for names, label in PANELS
        if any(name in metrics[r] for r in rounds for name in names)
    ]
    if not panels:
        raise ValueError("no round reported loss, accuracy or AUC")
    fig = Figure(figsize=(4.2 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=11)
    for i, (names, label) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        for name in names:
            points = [(r, metrics[r][name]) for r in rounds if name in metrics[r]]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=LABELS.get(name, name))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fig.savefig(temporary, format="png")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_training_figures(
    project_dir: Path, run_id: int | str, metrics: Mapping[int, Mapping[str, float]], app: str
) -> list[Path]:
    """The run's training figure, where its outputs are; [] when it reported no metrics."""
    if not metrics:
        return []
    project_dir = Path(project_dir)
    first = training_png(metrics, run_dir(project_dir, run_id) / FIGURE, title=f"{app}: training")
    written = [first]
    weights = project_dir / "weights"
    if weights.is_dir():
        written.append(Path(shutil.copyfile(first, weights / FIGURE)))
    return written
