"""Compare the federated model with a centralised one trained on the pooled data.

The centralised model uses the same code as the federated one (the same preprocessing, model,
initialisation, SGD and settings from ``[tool.flwr.app.config]``), trained for
``num-server-rounds x local-epochs`` epochs on the pooled training splits, and is evaluated on
the pooled test splits: the rows on which the federated model is evaluated.

    python fl-diabetes-prediction/centralised_baseline.py            # both, a markdown table
    python fl-diabetes-prediction/centralised_baseline.py --no-federated
    python fl-diabetes-prediction/centralised_baseline.py --run-config "strategy='fedprox'"

The federated side is a real ``syft_flwr.run`` simulation on a temporary, bootstrapped copy of
this app, with each data folder given as one datasite's data. Only for a person who may see all
the data (here: the published Pima Indians Diabetes data set split in two).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_DIR = Path(__file__).resolve().parent
REPO_DIR = PROJECT_DIR.parent
DEFAULT_DATA = [
    REPO_DIR / "datasets" / "pima-indians-diabetes-database" / f"do{i}" / "private" for i in (1, 2)
]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from fl_diabetes_prediction import model  # noqa: E402
from fl_diabetes_prediction.data import read_split  # noqa: E402
from fl_diabetes_prediction.preprocessing import FeatureStats  # noqa: E402
from fl_diabetes_prediction.settings import RunSettings  # noqa: E402


@dataclass(frozen=True)
class Scores:
    accuracy: float
    auc: float
    loss: float
    num_examples: int
    auc_max_error: float = 0.0


def app_run_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``[tool.flwr.app.config]`` of this app with ``overrides`` on top."""
    with (PROJECT_DIR / "pyproject.toml").open("rb") as fh:
        config = dict(tomllib.load(fh)["tool"]["flwr"]["app"]["config"])
    config.update(overrides or {})
    return config


def pooled(data_dirs: list[Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [read_split(folder, split) for folder in data_dirs]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def train_centralised(
    data_dirs: list[Path], run_config: dict[str, Any] | None = None
) -> tuple[Scores, dict[str, np.ndarray]]:
    """Train on the pooled training splits; scores on the pooled test splits, and the model."""
    settings = RunSettings.from_run_config(app_run_config(run_config))
    x_train, y_train = pooled(data_dirs, "train")
    x_test, y_test = pooled(data_dirs, "test")
    stats = FeatureStats.of(x_train, y_train)
    params, _ = model.train(
        model.init_params(x_train.shape[1], settings.seed),
        stats.transform(x_train),
        y_train,
        epochs=settings.num_rounds * settings.local_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        rng=model.training_rng(settings.seed, 0, 0),
    )
    features = stats.transform(x_test)
    probs = model.predict_proba(params, features)
    result = model.evaluate(params, features, y_test, settings.auc_bins)
    scores = Scores(
        accuracy=result.accuracy,
        auc=model.exact_auc(probs, y_test),
        loss=result.loss,
        num_examples=result.num_examples,
    )
    return scores, params


def federated_scores(metrics: list[dict[str, Any]]) -> Scores:
    """The last round of a federated run's ``weights/metrics.json``."""
    last = max(metrics, key=lambda m: m["round"])
    return Scores(
        accuracy=last["accuracy"],
        auc=last["auc"],
        loss=last["loss"],
        num_examples=last["num-examples"],
        auc_max_error=last.get("auc-max-error") or 0.0,
    )


def run_federated(data_dirs: list[Path], run_config: dict[str, Any] | None = None) -> Scores:
    """Simulate the federation with ``syft_flwr.run``, one datasite per data folder."""
    import syft_flwr

    with tempfile.TemporaryDirectory(prefix="fl_baseline_") as tmp:
        project = Path(tmp) / PROJECT_DIR.name
        shutil.copytree(
            PROJECT_DIR,
            project,
            ignore=shutil.ignore_patterns(
                "__pycache__", "weights", "simulation_logs", "main.py", ".venv"
            ),
        )
        datasites = [f"do{i}@baseline.local" for i in range(1, len(data_dirs) + 1)]
        syft_flwr.bootstrap(project, aggregator="ds@baseline.local", datasites=datasites)
        syft_flwr.run(project, list(data_dirs), run_config=run_config or None)
        metrics = json.loads((project / "weights" / "metrics.json").read_text())
    return federated_scores(metrics)


def markdown_table(
    central: Scores, federated: Scores | None, settings: RunSettings, datasites: int
) -> str:
    epochs = settings.num_rounds * settings.local_epochs
    rows = [
        "| model | accuracy | ROC AUC | log loss | test rows |",
        "|---|---|---|---|---|",
        f"| centralised (pooled training data, {epochs} epochs) | {central.accuracy:.4f} | "
        f"{central.auc:.4f} | {central.loss:.4f} | {central.num_examples} |",
    ]
    if federated is not None:
        rows.append(
            f"| federated ({settings.strategy}, {settings.num_rounds} rounds x "
            f"{settings.local_epochs} epoch(s), {datasites} datasites) | "
            f"{federated.accuracy:.4f} | {federated.auc:.4f} (±{federated.auc_max_error:.4f}) | "
            f"{federated.loss:.4f} | {federated.num_examples} |"
        )
        rows.append(
            f"| difference (points) | {100 * (federated.accuracy - central.accuracy):+.2f} | "
            f"{100 * (federated.auc - central.auc):+.2f} | "
            f"{federated.loss - central.loss:+.4f} | |"
        )
    return "\n".join(rows)


def _parse_run_config(text: str | None) -> dict[str, Any]:
    from syft_flwr.runtime import parse_config  # Flower's key=value syntax

    try:
        return parse_config(text)
    except ValueError as exc:
        raise SystemExit(f"--run-config: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=DEFAULT_DATA,
        help="one data folder (train.csv, test.csv) per datasite (default: the two data "
        "owners' private splits in datasets/)",
    )
    parser.add_argument("--run-config", default=None, help='e.g. "num-server-rounds=20"')
    parser.add_argument(
        "--no-federated", action="store_true", help="only train and score the centralised model"
    )
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.data if not (d / "train.csv").is_file()]
    if missing:
        raise SystemExit(
            f"no train.csv in {', '.join(missing)}: pass --data with one folder per datasite"
        )
    overrides = _parse_run_config(args.run_config)
    settings = RunSettings.from_run_config(app_run_config(overrides))
    central, _ = train_centralised(args.data, overrides)
    federated = None if args.no_federated else run_federated(args.data, overrides)
    print(markdown_table(central, federated, settings, len(args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
