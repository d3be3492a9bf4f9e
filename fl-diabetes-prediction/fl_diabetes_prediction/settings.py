"""Run settings: what the data scientist chose, and what a data owner may override.

The ServerApp sends the training settings of the run config with every train message, so a
data scientist's ``--run-config`` reaches every datasite. A data owner may override
``local-epochs``, ``batch-size`` and ``learning-rate`` for their own datasite through the node
config (``SYFT_FLWR_NODE_CONFIG="local-epochs=2 learning-rate=0.05"``): node config first, then
the message, then the ClientApp's own run config, then the defaults below. (The node config
syft_flwr gives also holds the run config; only values that differ from it are the owner's.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STRATEGY_NAMES = ("fedavg", "fedprox", "fedadam", "fedtrimmedavg", "krum")
NODE_OVERRIDABLE = ("local-epochs", "batch-size", "learning-rate")

DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 10,
    "strategy": "fedavg",
    "local-epochs": 1,
    "batch-size": 32,
    "learning-rate": 0.01,
    "seed": 42,
    "auc-bins": 100,
    "proximal-mu": 0.1,
    "server-learning-rate": 0.1,
    "trim-beta": 0.2,
    "num-malicious-nodes": 0,
    "round-timeout": 0.0,
    "min-train-nodes": 1,
}


def _as_int(key: str, value: Any, source: str, minimum: int) -> int:
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} ({source}) must be a whole number") from None
    if number < minimum:
        raise ValueError(f"{key}={value!r} ({source}) must be at least {minimum}")
    return number


def _as_float(key: str, value: Any, source: str, minimum: float, strict: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={value!r} ({source}) must be a number") from None
    if number < minimum or (strict and number == minimum):
        relation = "greater than" if strict else "at least"
        raise ValueError(f"{key}={value!r} ({source}) must be {relation} {minimum}")
    return number


def _lookup(key: str, layers: list[tuple[str, Mapping[str, Any]]]) -> tuple[Any, str]:
    for source, mapping in layers:
        if key in mapping and mapping[key] is not None and mapping[key] != "":
            return mapping[key], source
    return DEFAULTS[key], "default"


@dataclass(frozen=True)
class TrainSettings:
    """How one datasite trains in one round, and where each value came from."""

    local_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def resolve(
        cls,
        message_config: Mapping[str, Any],
        run_config: Mapping[str, Any],
        node_config: Mapping[str, Any],
    ) -> TrainSettings:
        layers = [
            ("the data owner's node config", _own(node_config, run_config)),
            ("sent by the ServerApp", message_config),
            ("the ClientApp's run config", run_config),
        ]
        found: dict[str, tuple[Any, str]] = {}
        for key in (*NODE_OVERRIDABLE, "seed"):
            # The seed is the data scientist's: a datasite cannot change it.
            found[key] = _lookup(key, layers if key in NODE_OVERRIDABLE else layers[1:])
        return cls(
            local_epochs=_as_int("local-epochs", *found["local-epochs"], 1),
            batch_size=_as_int("batch-size", *found["batch-size"], 1),
            learning_rate=_as_float("learning-rate", *found["learning-rate"], 0.0, True),
            seed=_as_int("seed", *found["seed"], 0),
            sources={key: source for key, (_, source) in found.items()},
        )


@dataclass(frozen=True)
class RunSettings:
    """The ServerApp's view of the run config, validated."""

    num_rounds: int
    strategy: str
    local_epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    auc_bins: int
    proximal_mu: float
    server_learning_rate: float
    trim_beta: float
    num_malicious_nodes: int
    round_timeout: float | None
    resume: bool
    #: the fewest datasites whose replies a round may aggregate; fewer ends the run
    min_train_nodes: int = 1

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> RunSettings:
        layers = [("run config", run_config)]

        def get(key: str) -> Any:
            return _lookup(key, layers)[0]

        strategy = str(get("strategy")).strip().lower()
        if strategy not in STRATEGY_NAMES:
            raise ValueError(
                f"strategy={get('strategy')!r} (run config) is not supported: choose one of "
                f"{', '.join(STRATEGY_NAMES)}"
            )
        src = "run config"
        trim_beta = _as_float("trim-beta", get("trim-beta"), src, 0.0, False)
        if trim_beta >= 0.5:
            raise ValueError(f"trim-beta={trim_beta} (run config) must be below 0.5")
        timeout = _as_float("round-timeout", get("round-timeout"), src, 0.0, False)
        return cls(
            num_rounds=_as_int("num-server-rounds", get("num-server-rounds"), src, 1),
            strategy=strategy,
            local_epochs=_as_int("local-epochs", get("local-epochs"), src, 1),
            batch_size=_as_int("batch-size", get("batch-size"), src, 1),
            learning_rate=_as_float("learning-rate", get("learning-rate"), src, 0.0, True),
            seed=_as_int("seed", get("seed"), src, 0),
            auc_bins=_as_int("auc-bins", get("auc-bins"), src, 2),
            proximal_mu=_as_float("proximal-mu", get("proximal-mu"), src, 0.0, False),
            server_learning_rate=_as_float(
                "server-learning-rate", get("server-learning-rate"), src, 0.0, True
            ),
            trim_beta=trim_beta,
            num_malicious_nodes=_as_int("num-malicious-nodes", get("num-malicious-nodes"), src, 0),
            round_timeout=timeout or None,
            resume=_as_bool(run_config.get("resume", False)),
            min_train_nodes=_as_int("min-train-nodes", get("min-train-nodes"), src, 1),
        )

    def train_config(self) -> dict[str, Any]:
        """The settings every datasite receives with each train message."""
        return {
            "local-epochs": self.local_epochs,
            "batch-size": self.batch_size,
            "learning-rate": self.learning_rate,
            "seed": self.seed,
        }


def _own(node_config: Mapping[str, Any], run_config: Mapping[str, Any]) -> dict[str, Any]:
    """What the data owner set: syft_flwr's node config also holds the run config (the app's
    ``[tool.flwr.app.config]``, as syft-flwr 0.5 gave it); values equal to it are not the
    owner's own."""
    return {k: v for k, v in node_config.items() if k not in run_config or run_config[k] != v}


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
