"""syft_flwr.utils: how an app finds out whether it runs under syft_flwr, and where its data is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from syft_flwr.utils import (
    DatasetPathError,
    dataset_path_context,
    get_syftbox_dataset_path,
    run_syft_flwr,
)
from tests.transport.helpers import datasite, federation, query_message


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch) -> None:
    monkeypatch.delenv("DATA_DIR", raising=False)


def test_run_syft_flwr_is_false_outside_syft_flwr() -> None:
    assert run_syft_flwr() is False
    with pytest.raises(DatasetPathError, match="not running under syft_flwr"):
        get_syftbox_dataset_path()


def test_run_syft_flwr_is_true_inside_a_dataset_path_context(tmp_path: Path) -> None:
    with dataset_path_context(tmp_path):
        assert run_syft_flwr() is True
        assert get_syftbox_dataset_path() == tmp_path
    assert run_syft_flwr() is False  # reset on leaving


@pytest.mark.parametrize(("value", "expected"), [("/data", True), ("", False)])
def test_run_syft_flwr_follows_data_dir(monkeypatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("DATA_DIR", value)  # what a data owner's job runner sets
    assert run_syft_flwr() is expected


def test_a_client_app_served_by_a_datasite_node_runs_under_syft_flwr(tmp_path: Path) -> None:
    seen: list[tuple[bool, str]] = []
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        seen.append((run_syft_flwr(), str(get_syftbox_dataset_path())))
        return Message(RecordDict({"m": MetricRecord({"ok": 1})}), reply_to=msg)

    with federation(tmp_path, [[np.zeros(1)]], [1], app=app) as fed:
        replies = list(fed.grid.send_and_receive([query_message(fed.grid, datasite(1))]))
        data_path = fed.nodes[datasite(1)].data_path
    assert len(replies) == 1 and not replies[0].has_error()
    assert seen == [(True, str(data_path))]
    assert run_syft_flwr() is False  # the serving thread's context did not leak here


def test_plural() -> None:
    from syft_flwr.utils import plural

    assert plural(1, "round") == "1 round" and plural(0, "round") == "0 rounds"
    assert (
        plural(1, "reply", "replies") == "1 reply" and plural(2, "reply", "replies") == "2 replies"
    )
