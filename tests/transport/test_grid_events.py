"""The monitoring hooks: the events a grid publishes, what a node tells its heartbeat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import numpy as np
from flwr.app import ArrayRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg
from loguru import logger

from syft_flwr.events import (
    DatasiteMissing,
    Event,
    MessageSent,
    ReplyReceived,
    RoundFinished,
    RoundStarted,
    RunFinished,
    RunStarted,
)
from syft_flwr.monitor import Heartbeat
from tests.transport.helpers import APP, datasite, federation, make_app, query_message

DELTAS = [[np.full(3, 1.0)], [np.full(3, 2.0)]]
COUNTS = [1, 3]
E = TypeVar("E", bound=Event)


class Recorder:
    """A subscriber that writes down every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, cls: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, cls)]


class Broken:
    """A subscriber that raises on every event."""

    def on_event(self, event: Event) -> None:
        raise RuntimeError(f"{event.kind} is broken")


def _failing_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        raise ValueError("no rows")

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        raise ValueError("no rows")

    return app


def test_the_grid_publishes_each_step_of_the_run(tmp_path: Path) -> None:
    recorder = Recorder()
    do1, do2 = datasite(1), datasite(2)
    kwargs = {"grid_kwargs": {"subscribers": [recorder]}, "apps": {2: _failing_app()}}
    with federation(tmp_path, DELTAS, COUNTS, **kwargs) as fed:
        FedAvg(min_available_nodes=2, min_train_nodes=1, min_evaluate_nodes=1).start(
            fed.grid, ArrayRecord([np.zeros(3)]), num_rounds=2
        )
        run_id = fed.grid.run.run_id
        assert "run_end" not in recorder.kinds()
        fed.grid.finish()
        fed.grid.close()  # finishing twice publishes RunFinished once

    kinds = recorder.kinds()
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert [(e.run_id, e.app, e.datasites) for e in recorder.of(RunStarted)] == [
        (run_id, APP, (do1, do2))
    ]
    assert [e.round for e in recorder.of(RoundStarted)] == [1, 2]
    # each round has a train and an evaluate exchange with both datasites
    sent = recorder.of(MessageSent)
    assert sorted(e.datasite for e in sent if e.round == 1) == [do1, do1, do2, do2]
    assert all(e.nbytes > 0 for e in sent)
    replies = recorder.of(ReplyReceived)
    assert len(replies) == 8
    assert all(e.latency_s > 0 and e.nbytes > 0 for e in replies)
    assert {(e.datasite, e.error is None) for e in replies} == {(do1, True), (do2, False)}
    assert any("no rows" in e.error for e in replies if e.error)
    finished = recorder.of(RoundFinished)
    assert [e.round for e in finished] == [1, 1, 2, 2]
    assert all(e.answered == (do1,) and set(e.failed) == {do2} for e in finished)
    assert all(set(e.errors) == {do2} and not e.missing for e in finished)
    assert [e.exchange for e in finished] == [1, 2, 3, 4]
    assert [e.message_types for e in finished] == [("train",), ("evaluate",)] * 2
    (end,) = recorder.of(RunFinished)
    assert end.ok is False and set(end.failures) == {do2} and "no rows" in end.failures[do2]
    # the grid's report is built from the same events
    report = fed.grid.report
    assert [r.index for r in report.rounds] == [1, 2, 3, 4]
    assert [r.server_round for r in report.rounds] == [1, 1, 2, 2]
    assert all(r.answered == [do1] and list(r.errors) == [do2] for r in report.rounds)
    assert report.participants() == {1: [do1], 2: [do1]}
    assert list(report.failures()) == [do2]
    assert report.failures()[do2].startswith("raised ValueError in round 1: ")


def test_a_missing_datasite_and_a_broken_subscriber_never_break_the_run(tmp_path: Path) -> None:
    recorder, lines = Recorder(), []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    broken = Broken()
    try:
        kwargs = {"grid_kwargs": {"subscribers": [broken]}, "start": [1], "timeout": 0.5}
        with federation(tmp_path, DELTAS, COUNTS, **kwargs) as fed:
            grid = fed.grid
            replies = grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2)])
            assert len(list(replies)) == 1
            grid._events.unsubscribe(broken)
            grid._events.subscribe(recorder)
            grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2)])
    finally:
        logger.remove(sink)
    assert any("subscriber Broken failed on round_start" in line for line in lines)
    (missing,) = recorder.of(DatasiteMissing)
    assert missing.datasite == datasite(2) and missing.round == 2 and missing.waited_s >= 0.5
    (finished,) = recorder.of(RoundFinished)
    assert finished.answered == (datasite(1),) and finished.missing == (datasite(2),)
    assert "no reply within 0.5 s" in finished.failed[datasite(2)]
    (end,) = recorder.of(RunFinished)  # close() finished the run
    assert end.ok is False and datasite(2) in end.failures
    # the report (the grid's first subscriber) saw both exchanges despite the broken one
    assert [r.missing for r in grid.report.rounds] == [[datasite(2)], [datasite(2)]]


def test_a_node_tells_its_heartbeat_which_round_it_serves(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], start=[]) as fed:
        do1 = datasite(1)
        heartbeat = Heartbeat(fed.network, do1, "datasite", interval=30)
        fed.nodes[do1].heartbeat = heartbeat
        with heartbeat:
            fed.start(do1)
            FedAvg(min_available_nodes=1, min_train_nodes=1, fraction_evaluate=0.0).start(
                fed.grid, ArrayRecord([np.zeros(3)]), num_rounds=2
            )
            assert heartbeat.running == {"job": None, "app": APP, "round": 2}
            status = json.loads(fed.network.status_path(do1).read_text())
            assert status["running"]["round"] == 2 and status["running"]["app"] == APP
            fed.stop(do1)
        assert heartbeat.beats < 10  # rewritten when the round changes, not per message


def test_importing_the_transport_does_not_import_the_monitor() -> None:
    code = (
        "import sys, syft_flwr.transport, syft_flwr.simulation; "
        "print(sorted(m for m in sys.modules if m.startswith(('prometheus', 'syft_flwr.monitor'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_subscriber_and_no_heartbeat_cost_nothing(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], app=make_app()) as fed:
        assert len(list(fed.grid.send_and_receive([query_message(fed.grid, datasite(1))]))) == 1
        fed.grid.finish(ok=True, failures={})  # no subscriber but the report: no error
