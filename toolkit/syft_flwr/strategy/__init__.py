"""``syft_flwr.strategy``: the strategies syft-flwr 0.5 apps import.

``FedAvgWithModelSaving`` is Flower's (legacy) ``FedAvg`` that also writes the global model of
every round to ``<save_path>/parameters_round_<n>.safetensors``. New apps can use any strategy
of ``flwr.serverapp.strategy`` directly.
"""

from __future__ import annotations

from syft_flwr.strategy.fedavg import FedAvgWithModelSaving

__all__ = ["FedAvgWithModelSaving"]
