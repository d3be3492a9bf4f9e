"""The aggregator's side: federated preprocessing, then training with the chosen strategy.

Weights and metrics of every round go to ``<project>/weights/`` whatever the current folder
(see :mod:`fl_diabetes_prediction.checkpoint`).
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_diabetes_prediction.training import run_training

app = ServerApp()
PROJECT_DIR = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = PROJECT_DIR / "weights"


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_training(grid, dict(context.run_config), WEIGHTS_DIR)
