"""FedAvg that saves the global model each round (syft-flwr 0.5's ``FedAvgWithModelSaving``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.common import Parameters, Scalar, parameters_to_ndarrays
from flwr.server.strategy import FedAvg
from loguru import logger

from syft_flwr.network.atomic import atomic_write_bytes


def round_file(save_path: Path | str, server_round: int) -> Path:
    """Where the global model of ``server_round`` (0: the initial model) is saved."""
    return Path(save_path) / f"parameters_round_{server_round}.safetensors"


class FedAvgWithModelSaving(FedAvg):
    """Flower's ``FedAvg`` (``flwr.server.strategy``) that writes the global model to
    ``save_path`` before each server-side evaluation: ``parameters_round_<n>.safetensors``
    with one tensor per array, named ``layer_0``, ``layer_1``, ... (read them back with
    ``safetensors.numpy.load_file``). Every other argument is ``FedAvg``'s."""

    def __init__(self, save_path: Path | str, *args: Any, **kwargs: Any) -> None:
        self.save_path = Path(save_path)
        self.save_path.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)

    def save_global_model(self, server_round: int, parameters: Parameters) -> Path:
        """Write ``parameters`` as the global model of ``server_round``; returns the file."""
        from safetensors.numpy import save

        arrays = parameters_to_ndarrays(parameters)
        tensors = {f"layer_{i}": array for i, array in enumerate(arrays)}
        path = round_file(self.save_path, server_round)
        self.save_path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, save(tensors))
        logger.info(f"global model of round {server_round} saved to {path}")
        return path

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        self.save_global_model(server_round, parameters)
        return super().evaluate(server_round, parameters)
