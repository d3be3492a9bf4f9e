"""syft-flwr 0.5's surface that apps and notebooks touch: each name works or says what to use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from flwr.common import ndarrays_to_parameters

import syft_flwr
from syft_flwr.errors import SyftFlwrError
from syft_flwr.transport.settings import TransportSettings
from syft_flwr.utils import get_syftbox_dataset_path, run_syft_flwr
from tests.support import AGGREGATOR, DATASITES


def test_fedavg_with_model_saving_writes_each_round(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from syft_flwr.strategy import FedAvgWithModelSaving

    strategy = FedAvgWithModelSaving(save_path=str(tmp_path / "weights"), min_fit_clients=1)
    arrays = [np.arange(3.0), np.ones((2, 2), dtype=np.float32)]
    assert strategy.evaluate(4, ndarrays_to_parameters(arrays)) is None  # FedAvg's own result
    saved = load_file(str(tmp_path / "weights" / "parameters_round_4.safetensors"))
    assert sorted(saved) == ["layer_0", "layer_1"]
    np.testing.assert_array_equal(saved["layer_1"], arrays[1])
    assert saved["layer_1"].dtype == np.float32


@pytest.mark.parametrize(
    ("env", "encrypt"),
    [
        ({"SYFT_FLWR_ENCRYPTION_ENABLED": "false"}, False),
        ({"SYFT_FLWR_ENCRYPTION_ENABLED": "true"}, True),
        ({"SYFT_FLWR_ENCRYPTION_ENABLED": "false", "SYFT_FLWR_ENCRYPT": "1"}, True),
        ({}, True),
    ],
)
def test_syft_flwr_0_5_encryption_switch(monkeypatch, env: dict, encrypt: bool) -> None:
    for name in ("SYFT_FLWR_ENCRYPT", "SYFT_FLWR_ENCRYPTION_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert TransportSettings.from_env().encrypt is encrypt


def test_run_result_reads_as_syft_flwr_0_5_s(tiny_app: Path, tiny_data: list[Path]) -> None:
    """0.5 returned True (a script) or a task to await (a notebook); both forms work."""
    syft_flwr.bootstrap(tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    result = syft_flwr.run(tiny_app, tiny_data)
    assert result  # `if syft_flwr.run(...):`

    async def notebook_cell():
        return await syft_flwr.run(tiny_app, tiny_data)

    awaited = asyncio.run(notebook_cell())
    assert awaited.rounds == 1 and awaited.project_dir == tiny_app


def test_data_helpers_keep_their_names(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert run_syft_flwr() and get_syftbox_dataset_path() == tmp_path


def test_syft_flwr_0_5_keyword_names(tiny_app: Path, tiny_data: list[Path]) -> None:
    syft_flwr.bootstrap(flwr_project_dir=tiny_app, aggregator=AGGREGATOR, datasites=DATASITES)
    assert syft_flwr.run(project_dir=tiny_app, mock_dataset_paths=tiny_data).rounds == 1
    with pytest.raises(SyftFlwrError, match="one mock data folder per datasite"):
        syft_flwr.run(tiny_app)
    with pytest.raises(SyftFlwrError, match="needs the project folder"):
        syft_flwr.bootstrap(aggregator=AGGREGATOR, datasites=DATASITES)
