"""The Flower strategies this app can train with, and the state a resumed run needs back.

All take every datasite each round (fraction 1.0). ``min-train-nodes`` (run config, default
1) is the strategy's minimum: a round in which fewer datasites reply validly ends the run
(:class:`~fl_diabetes_prediction.training.FederatedTraining` enforces it on the replies).
Replies are sorted by node id before aggregation (see the ServerApp), so sums are added in
the same order on every run and results repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, FedTrimmedAvg, Krum, Strategy

from fl_diabetes_prediction.settings import RunSettings

# Server-side state that changes the result of later rounds (FedOpt's moment estimates).
_STATE_ATTRIBUTES = ("m_t", "v_t")

EvaluateAggregator = Callable[[list[RecordDict], str], MetricRecord]


def build_strategy(settings: RunSettings, evaluate_metrics_aggr_fn: EvaluateAggregator) -> Strategy:
    common = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": settings.min_train_nodes,
        "min_evaluate_nodes": settings.min_train_nodes,
        "min_available_nodes": settings.min_train_nodes,
        "evaluate_metrics_aggr_fn": evaluate_metrics_aggr_fn,
    }
    name = settings.strategy
    if name == "fedavg":
        return FedAvg(**common)
    if name == "fedprox":
        return FedProx(**common, proximal_mu=settings.proximal_mu)
    if name == "fedadam":
        return FedAdam(**common, eta=settings.server_learning_rate, eta_l=settings.learning_rate)
    if name == "fedtrimmedavg":
        return FedTrimmedAvg(**common, beta=settings.trim_beta)
    if name == "krum":
        return Krum(**common, num_malicious_nodes=settings.num_malicious_nodes)
    raise ValueError(f"unknown strategy {name!r}")


def strategy_state(strategy: Strategy) -> dict[str, np.ndarray]:
    """Arrays of the strategy's own state, flattened to ``"<attribute>/<array>"`` keys."""
    state: dict[str, np.ndarray] = {}
    for attribute in _STATE_ATTRIBUTES:
        value = getattr(strategy, attribute, None)
        if isinstance(value, dict):
            for key, array in value.items():
                state[f"{attribute}/{key}"] = np.asarray(array)
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, np.ndarray]) -> None:
    """Put back what :func:`strategy_state` saved (nothing to do for stateless strategies)."""
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for flat_key, array in state.items():
        attribute, _, key = flat_key.partition("/")
        if attribute not in _STATE_ATTRIBUTES or not hasattr(strategy, attribute):
            raise ValueError(
                f"saved strategy state {flat_key!r} does not fit {type(strategy).__name__}: "
                "resume with the strategy the run started with"
            )
        grouped.setdefault(attribute, {})[key] = np.array(array)
    for attribute, arrays in grouped.items():
        setattr(strategy, attribute, arrays)
