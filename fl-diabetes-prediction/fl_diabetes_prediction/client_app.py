"""The datasite's side: statistics, local training and evaluation on the data owner's data.

The data folder comes from ``syft_flwr.utils.get_syftbox_dataset_path()`` (mock data in a
simulation, the private data in a data owner's job); under plain Flower each node reads its
partition of the mock data (:func:`~fl_diabetes_prediction.data.read_node_split`). Only
aggregates leave the datasite: sums and counts (query), model weights and a loss (train), loss,
accuracy and score histograms (evaluate).
"""

from __future__ import annotations

from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from loguru import logger

from fl_diabetes_prediction import model
from fl_diabetes_prediction.data import FEATURES, read_node_split
from fl_diabetes_prediction.preprocessing import FeatureStats, LocalSums
from fl_diabetes_prediction.settings import DEFAULTS, TrainSettings

app = ClientApp()

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"
STATS_KEY = "stats"


def _config(msg: Message) -> dict:
    return dict(msg.content[CONFIG_KEY]) if CONFIG_KEY in msg.content else {}


def _prepared(context: Context, split: str, config: dict):
    features, labels = read_node_split(context.node_config, context.run_config, split)
    stats = FeatureStats.from_dict(config, prefix="prep-")
    return stats.transform(features), labels


def _params(msg: Message) -> model.Params:
    if ARRAYS_KEY not in msg.content:
        raise ValueError("the message carries no model arrays under 'arrays'")
    record = msg.content[ARRAYS_KEY]
    return model.check_params({k: v.numpy() for k, v in record.items()}, len(FEATURES))


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Sums and counts of this datasite's training split, for the federated preprocessing."""
    features, labels = read_node_split(context.node_config, context.run_config, "train")
    sums = LocalSums.of(features, labels)
    return Message(RecordDict({STATS_KEY: MetricRecord(sums.to_metrics())}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the global model for ``local-epochs`` on this datasite's training split."""
    config = _config(msg)
    settings = TrainSettings.resolve(config, context.run_config, context.node_config)
    server_round = int(config.get("server-round", 0))
    features, labels = _prepared(context, "train", config)
    params, train_loss = model.train(
        _params(msg),
        features,
        labels,
        epochs=settings.local_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        rng=model.training_rng(settings.seed, server_round, context.node_id),
        proximal_mu=float(config.get("proximal-mu", 0.0)),
    )
    own = [k for k, source in settings.sources.items() if source.startswith("the data owner")]
    logger.info(
        f"round {server_round}: trained {settings.local_epochs} epoch(s) on {len(labels)} rows, "
        f"lr={settings.learning_rate}, batch={settings.batch_size}, loss={train_loss:.4f}"
        + (f" (node config sets {', '.join(own)})" if own else "")
    )
    metrics = MetricRecord(
        {
            "num-examples": len(labels),
            "train-loss": train_loss,
            "local-epochs": settings.local_epochs,
            "batch-size": settings.batch_size,
            "learning-rate": settings.learning_rate,
        }
    )
    arrays = ArrayRecord({k: Array(v) for k, v in params.items()})
    content = RecordDict({ARRAYS_KEY: arrays, METRICS_KEY: metrics})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Loss, accuracy and per-class score histograms (for the ROC AUC) on the test split."""
    config = _config(msg)
    bins = int(config.get("auc-bins", DEFAULTS["auc-bins"]))
    features, labels = _prepared(context, "test", config)
    result = model.evaluate(_params(msg), features, labels, bins)
    metrics = MetricRecord(
        {
            "num-examples": result.num_examples,
            "loss": result.loss,
            "accuracy": result.accuracy,
            "hist-pos": result.hist_pos.tolist(),
            "hist-neg": result.hist_neg.tolist(),
        }
    )
    return Message(RecordDict({METRICS_KEY: metrics}), reply_to=msg)
