"""The aggregator's loop: federated statistics, then rounds of training and evaluation.

It follows ``flwr.serverapp.strategy.Strategy.start`` (configure_train, send, aggregate_train,
configure_evaluate, send, aggregate_evaluate), with what that loop lacks here:

- a QUERY round first, for the federated imputation and standardisation statistics;
- an evaluation of the initial model (round 0), the reference later rounds must beat;
- rounds that can start after 1: ``--resume`` continues after the last saved round with the
  same round numbers, so FedAdam's bias correction and each datasite's shuffling seed (a
  function of seed, round and datasite) are exactly those of an uninterrupted run;
- replies sorted by node id before aggregation, so sums are always added in one order;
- each round saved (weights, strategy state, metrics) before the next one starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from loguru import logger

from fl_diabetes_prediction import model
from fl_diabetes_prediction.checkpoint import RunStore
from fl_diabetes_prediction.data import FEATURES
from fl_diabetes_prediction.preprocessing import FeatureStats, LocalSums
from fl_diabetes_prediction.settings import RunSettings
from fl_diabetes_prediction.strategies import (
    build_strategy,
    restore_strategy_state,
    strategy_state,
)

STATS_KEY = "stats"
# Settings that change the result of a round: a resumed run should keep them.
RESULT_SETTINGS = (
    "strategy",
    "seed",
    "local-epochs",
    "batch-size",
    "learning-rate",
    "auc-bins",
    "proximal-mu",
    "server-learning-rate",
    "trim-beta",
    "num-malicious-nodes",
)


@dataclass
class TrainingResult:
    """What a run produced: the final model and one metrics entry per round (0 = initial)."""

    params: dict[str, np.ndarray]
    metrics: list[dict[str, Any]]
    stats: FeatureStats
    resumed_from: int | None


def aggregate_evaluation(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Pool the datasites' evaluations: weighted loss/accuracy, AUC from summed histograms."""
    metrics = [next(iter(r.metric_records.values())) for r in records]
    counts = np.array([float(m[weighted_by_key]) for m in metrics])
    total = counts.sum()
    hist_pos = np.sum([np.asarray(m["hist-pos"], float) for m in metrics], axis=0)
    hist_neg = np.sum([np.asarray(m["hist-neg"], float) for m in metrics], axis=0)
    auc, auc_error = model.auc_from_histograms(hist_pos, hist_neg)
    return MetricRecord(
        {
            "loss": float(np.dot(counts, [m["loss"] for m in metrics]) / total),
            "accuracy": float(np.dot(counts, [m["accuracy"] for m in metrics]) / total),
            "auc": auc,
            "auc-max-error": auc_error,
            weighted_by_key: int(total),
        }
    )


def _sorted(replies: Iterable[Message]) -> list[Message]:
    return sorted(replies, key=lambda m: m.metadata.src_node_id)


def _short(reason: str, limit: int = 500) -> str:
    reason = reason.strip()
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_arrays(params: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v, dtype=float)) for k, v in params.items()})


def _from_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


class FederatedTraining:
    """One run of the app over ``grid``, saving each round in ``store``."""

    def __init__(self, grid: Grid, settings: RunSettings, store: RunStore):
        self.grid = grid
        self.settings = settings
        self.store = store
        self.strategy: Strategy = build_strategy(settings, aggregate_evaluation)

    # -- who answered ----------------------------------------------------------------------
    def _name(self, node_id: int) -> str:
        """The datasite's email when the grid knows it (DatasiteGrid does), else its node id."""
        email_of = getattr(self.grid, "email_of", None)
        if callable(email_of):
            try:
                return str(email_of(node_id))
            except (KeyError, ValueError):
                pass
        return str(node_id)

    def _failures(self, sent: list[Message], replies: list[Message]) -> dict[str, str]:
        """Why each datasite that was asked did not contribute."""
        failures = {
            self._name(r.metadata.src_node_id): _short(r.error.reason or f"code {r.error.code}")
            for r in replies
            if r.has_error()
        }
        answered = {r.metadata.src_node_id for r in replies}
        for msg in sent:
            if msg.metadata.dst_node_id not in answered:
                failures[self._name(msg.metadata.dst_node_id)] = "no reply before the timeout"
        return failures

    def _answered(self, replies: list[Message]) -> list[str]:
        return [self._name(r.metadata.src_node_id) for r in replies if not r.has_error()]

    def _check_minimum(
        self, step: str, answered: int, asked: int, failures: dict[str, str]
    ) -> None:
        """End the run when fewer than ``min-train-nodes`` datasites answered ``step``; else
        say that the run goes on without the ones that failed."""
        minimum = self.settings.min_train_nodes
        if answered < minimum:
            raise RuntimeError(
                f"{step}: {answered} of {asked} datasite(s) answered, fewer than "
                f"min-train-nodes = {minimum}; the run stops. Failed: {failures}"
            )
        if failures:
            logger.warning(
                f"{step}: continuing with {answered} of {asked} datasite(s) "
                f"(min-train-nodes = {minimum}); failed: {failures}"
            )

    # -- the steps -------------------------------------------------------------------------
    def query_stats(self) -> FeatureStats:
        """Round of sums and counts from every datasite -> pooled preprocessing statistics."""
        node_ids = sorted(self.grid.get_node_ids())
        if not node_ids:
            raise RuntimeError("the grid has no datasites to train on")
        if self.settings.min_train_nodes > len(node_ids):
            raise ValueError(
                f"min-train-nodes = {self.settings.min_train_nodes} but the run has only "
                f"{len(node_ids)} datasite(s): lower it in the run config"
            )
        messages = [
            Message(
                RecordDict({"config": ConfigRecord()}),
                dst_node_id=node_id,
                message_type=MessageType.QUERY,
                group_id="preprocessing",
            )
            for node_id in node_ids
        ]
        replies = _sorted(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        failures = self._failures(messages, replies)
        parts = [LocalSums.from_metrics(r.content[STATS_KEY]) for r in replies if not r.has_error()]
        if not parts:
            raise RuntimeError(
                f"no datasite sent its statistics ({failures}); check that each datasite's "
                "data folder has train.csv with the expected columns"
            )
        self._check_minimum("statistics", len(parts), len(messages), failures)
        stats = FeatureStats.combine(parts)
        logger.info(
            f"federated statistics from {len(parts)} datasite(s), {stats.rows} training rows: "
            + ", ".join(
                f"{name} impute={v:.3g} std={s:.3g}"
                for name, v, s in zip(FEATURES, stats.impute, stats.std, strict=True)
            )
        )
        return stats

    def _config(self, stats: FeatureStats, train: bool) -> ConfigRecord:
        values: dict[str, Any] = {**stats.to_config(), "auc-bins": self.settings.auc_bins}
        if train:
            values.update(self.settings.train_config())
        return ConfigRecord(values)

    def evaluate(
        self, server_round: int, arrays: ArrayRecord, stats: FeatureStats
    ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        messages = list(
            self.strategy.configure_evaluate(
                server_round, arrays, self._config(stats, train=False), self.grid
            )
        )
        replies = _sorted(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        nodes, failures = self._answered(replies), self._failures(messages, replies)
        self._check_minimum(f"round {server_round} evaluation", len(nodes), len(messages), failures)
        aggregated = self.strategy.aggregate_evaluate(server_round, replies)
        return (dict(aggregated) if aggregated is not None else {}), nodes, failures

    def train_round(
        self, server_round: int, arrays: ArrayRecord, stats: FeatureStats
    ) -> tuple[ArrayRecord, dict[str, Any], list[str], dict[str, str]]:
        messages = list(
            self.strategy.configure_train(
                server_round, arrays, self._config(stats, train=True), self.grid
            )
        )
        replies = _sorted(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        nodes, failures = self._answered(replies), self._failures(messages, replies)
        self._check_minimum(f"round {server_round} training", len(nodes), len(messages), failures)
        new_arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if new_arrays is None:
            raise RuntimeError(
                f"round {server_round}: no datasite returned a model update ({failures}). "
                f"{self.store.folder} holds the rounds before it: fix the datasites and run "
                "again with --resume to continue"
            )
        return new_arrays, dict(metrics or {}), nodes, failures

    # -- the run ---------------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "strategy": s.strategy,
            "seed": s.seed,
            "local-epochs": s.local_epochs,
            "batch-size": s.batch_size,
            "learning-rate": s.learning_rate,
            "auc-bins": s.auc_bins,
            "proximal-mu": s.proximal_mu,
            "server-learning-rate": s.server_learning_rate,
            "trim-beta": s.trim_beta,
            "num-malicious-nodes": s.num_malicious_nodes,
            "num-server-rounds": s.num_rounds,
            "features": list(FEATURES),
        }

    def _check_resumable(self, saved: dict[str, Any]) -> None:
        now = self._info()
        if saved.get("strategy") != now["strategy"]:
            raise ValueError(
                f"weights/ holds a run with strategy={saved.get('strategy')!r}, this run asks "
                f"for {now['strategy']!r}: resume with the same strategy, or start afresh "
                "without --resume"
            )
        if saved.get("features") != now["features"]:
            raise ValueError("weights/ holds a model of other features; start without --resume")
        changed = [
            f"{k}: {saved.get(k)!r} -> {now[k]!r}"
            for k in RESULT_SETTINGS
            if k in saved and saved[k] != now[k]
        ]
        if changed:
            logger.warning(
                "resuming with changed settings (" + "; ".join(changed) + "): the remaining "
                "rounds will not match an uninterrupted run"
            )

    def _entry(
        self,
        server_round: int,
        evaluation: dict[str, Any],
        train: dict[str, Any],
        participants: list[str],
        evaluated: list[str],
        failures: dict[str, str],
    ) -> dict[str, Any]:
        return {
            "round": server_round,
            "loss": _clean(evaluation.get("loss")),
            "accuracy": _clean(evaluation.get("accuracy")),
            "auc": _clean(evaluation.get("auc")),
            "auc-max-error": _clean(evaluation.get("auc-max-error")),
            "num-examples": evaluation.get("num-examples", 0),
            "train-loss": _clean(train.get("train-loss")),
            "participants": participants,
            "evaluated-on": evaluated,
            "failures": failures,
            "strategy": self.settings.strategy,
        }

    def _log(self, entry: dict[str, Any]) -> None:
        def fmt(key: str) -> str:
            value = entry.get(key)
            return "n/a" if value is None else f"{value:.4f}"

        logger.info(
            f"round {entry['round']}/{self.settings.num_rounds}: loss={fmt('loss')} "
            f"accuracy={fmt('accuracy')} auc={fmt('auc')} on {entry['num-examples']} test rows"
            + (f"; failures: {entry['failures']}" if entry["failures"] else "")
        )

    def _report(self, entry: dict[str, Any]) -> None:
        """Hand the round's metrics to a grid that records them (syft_flwr's DatasiteGrid)."""
        report = getattr(self.grid, "report_metrics", None)
        if callable(report):
            keys = ("loss", "accuracy", "auc", "train-loss")
            report(entry["round"], {k: entry[k] for k in keys if entry.get(k) is not None})

    def run(self) -> TrainingResult:
        s = self.settings
        logger.info(f"training with {type(self.strategy).__name__} for {s.num_rounds} round(s)")
        self.strategy.summary()
        checkpoint = self.store.load() if s.resume else None
        if s.resume and checkpoint is None:
            logger.warning(f"--resume: nothing saved in {self.store.folder}; starting afresh")

        if checkpoint is not None:
            self._check_resumable(checkpoint.info)
            self.store.drop_rounds_after(checkpoint.round)
            stats, params = checkpoint.stats, checkpoint.params
            restore_strategy_state(self.strategy, checkpoint.strategy_state)
            metrics, start = checkpoint.metrics, checkpoint.round + 1
            logger.info(
                f"resuming after round {checkpoint.round} of {s.num_rounds} from "
                f"{self.store.folder}"
            )
        else:
            if self.store.reset():
                logger.warning(
                    f"replacing the previous run's weights and metrics in {self.store.folder} "
                    "(run with --resume to continue it instead)"
                )
            stats = self.query_stats()
            self.store.save_preprocessing(stats)
            params = model.init_params(len(FEATURES), s.seed)
            evaluation, evaluated, failures = self.evaluate(0, _to_arrays(params), stats)
            entry = self._entry(0, evaluation, {}, [], evaluated, failures)
            self.store.save_round(0, params, {}, entry, self._info())
            self._log(entry)
            self._report(entry)
            metrics, start = [entry], 1

        if start > s.num_rounds:
            logger.info(f"all {s.num_rounds} rounds are already done; nothing to train")
        arrays = _to_arrays(params)
        for server_round in range(start, s.num_rounds + 1):
            arrays, train, participants, train_failures = self.train_round(
                server_round, arrays, stats
            )
            evaluation, evaluated, eval_failures = self.evaluate(server_round, arrays, stats)
            failures: dict[str, str] = {}
            for phase, found in (("train", train_failures), ("evaluate", eval_failures)):
                for who, why in found.items():
                    earlier = f"{failures[who]}; " if who in failures else ""
                    failures[who] = f"{earlier}{phase}: {why}"
            entry = self._entry(server_round, evaluation, train, participants, evaluated, failures)
            params = _from_arrays(arrays)
            self.store.save_round(
                server_round, params, strategy_state(self.strategy), entry, self._info()
            )
            self._log(entry)
            self._report(entry)
            metrics.append(entry)
        return TrainingResult(
            params=_from_arrays(arrays),
            metrics=metrics,
            stats=stats,
            resumed_from=checkpoint.round if checkpoint is not None else None,
        )


def run_training(grid: Grid, run_config: dict[str, Any], weights_dir: Path) -> TrainingResult:
    """Train over ``grid`` with ``run_config``, saving rounds in ``weights_dir``."""
    settings = RunSettings.from_run_config(run_config)
    return FederatedTraining(grid, settings, RunStore(weights_dir)).run()
