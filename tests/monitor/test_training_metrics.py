"""One source of truth for a run's rounds and metrics: its events, read by every view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import FedAvg
from PIL import Image

from syft_flwr.events import (
    EventBus,
    RoundFinished,
    RoundMetrics,
    RoundStarted,
    RunFinished,
    RunStarted,
    clean_metrics,
    count_rounds,
    event_from_json,
    event_to_json,
)
from syft_flwr.monitor import RunMonitor
from syft_flwr.monitor.figures import training_png, write_training_figures
from syft_flwr.monitor.runs import RunInfo, summarize_events
from syft_flwr.transport.report import RunReport
from tests.monitor.test_run_monitor import scrape
from tests.support import DATASITES
from tests.transport.helpers import federation

DO1, DO2 = DATASITES
ROUNDS = 3


def _fl_run(publish) -> None:
    """The FL app's shape: a statistics query (no round number), round 0 (the initial
    model's evaluation), then train + evaluate for rounds 1..3."""
    publish(RunStarted(5, "fl", (DO1, DO2)))
    publish(RoundStarted(1, (DO1, DO2)))
    publish(RoundFinished(1, (DO1, DO2), {}, exchange=1, server_round=None))
    exchange = 1
    for server_round in range(ROUNDS + 1):
        publish(RoundStarted(server_round, (DO1, DO2)))
        for _ in ("train", "evaluate") if server_round else ("evaluate",):
            exchange += 1
            publish(
                RoundFinished(
                    server_round, (DO1, DO2), {}, exchange=exchange, server_round=server_round
                )
            )
        accuracy = 0.5 + 0.1 * server_round
        publish(
            RoundMetrics(server_round, {"loss": 1.0 / (1 + server_round), "accuracy": accuracy})
        )
    publish(RunFinished(True, {}))


def test_count_rounds() -> None:
    assert count_rounds([None, 0, 1, 1, 2, 2, 3, 3]) == 3  # FL: query, round 0, 3 rounds
    assert count_rounds([1]) == 1
    assert count_rounds([None, None]) == 2  # no numbers at all: each exchange is one
    assert count_rounds([]) == 0


def test_clean_metrics_keeps_finite_numbers() -> None:
    got = clean_metrics({"a": 1, "b": 0.5, "c": float("nan"), "d": [1.0], "e": True, "f": "x"})
    assert got == {"a": 1.0, "b": 0.5}


def test_round_metrics_line_round_trips() -> None:
    event = RoundMetrics(4, {"accuracy": 0.75}, ts=3.0)
    assert event_from_json(event_to_json(event)) == event


def test_every_view_counts_the_same_rounds(tmp_path: Path) -> None:
    events = tmp_path / "runs" / "5" / "events.jsonl"
    report = RunReport()
    monitor = RunMonitor(events)
    port = monitor.serve_metrics(0)
    try:
        _fl_run(EventBus([report, monitor]).publish)
        samples = scrape(port)
    finally:
        monitor.close()
    run = summarize_events(RunInfo("5", "fl", DO1, tmp_path, events, tmp_path / "figures"))
    assert report.server_rounds == monitor.rounds_completed == run.rounds_completed == ROUNDS
    assert samples[("syft_flwr_rounds_completed", ())] == ROUNDS
    assert run.to_dict()["rounds_completed"] == ROUNDS
    # the metrics, per round, in the report, the run's summary and Prometheus
    assert report.final_metrics == run.final_metrics == {"loss": 0.25, "accuracy": 0.8}
    assert sorted(run.metrics) == [0, 1, 2, 3]
    for r in range(ROUNDS + 1):
        key = ("syft_flwr_round_metric", (("metric", "accuracy"), ("round", str(r))))
        assert samples[key] == pytest.approx(0.5 + 0.1 * r)
    assert samples[("syft_flwr_training_metric", (("metric", "accuracy"),))] == pytest.approx(0.8)
    assert samples[("syft_flwr_training_metric_round", ())] == ROUNDS


def test_training_figure(tmp_path: Path) -> None:
    metrics = {r: {"loss": 1 / (1 + r), "accuracy": 0.5 + r / 10, "auc": 0.6} for r in range(4)}
    (tmp_path / "weights").mkdir()
    written = write_training_figures(tmp_path, 9, metrics, "fl")
    assert written == [
        tmp_path / "runs" / "9" / "metrics.png",
        tmp_path / "weights" / "metrics.png",
    ]
    with Image.open(written[1]) as image:
        assert image.size[0] >= 3 * 400  # three readable panels side by side
    assert write_training_figures(tmp_path / "other", 9, {}, "fl") == []
    with pytest.raises(ValueError, match="no round reported"):
        training_png({1: {"x": 1.0}}, tmp_path / "x.png", title="t")


class _Reporting(FedAvg):
    """FedAvg that hands its aggregated evaluation to the grid, as the FL example app does."""

    def aggregate_evaluate(self, server_round, replies):
        metrics = super().aggregate_evaluate(server_round, replies)
        self.grid.report_metrics(server_round, dict(metrics or {}))
        return metrics


def test_the_grid_publishes_what_the_server_app_reports(tmp_path: Path) -> None:
    report_of: list[RoundMetrics] = []

    class Recorder:
        def on_event(self, event) -> None:
            if isinstance(event, RoundMetrics):
                report_of.append(event)

    kwargs = {"grid_kwargs": {"subscribers": [Recorder()]}}
    with federation(tmp_path, [[np.full(3, 1.0)], [np.full(3, 2.0)]], [1, 3], **kwargs) as fed:
        strategy = _Reporting(min_available_nodes=2)
        strategy.grid = fed.grid
        strategy.start(fed.grid, ArrayRecord([np.zeros(3)]), num_rounds=2)
        assert fed.grid.report.server_rounds == 2
        assert sorted(fed.grid.report.metrics) == [1, 2]
    assert [e.round for e in report_of] == [1, 2]
    assert all(e.metrics for e in report_of)
