"""The monitoring hooks: what a grid tells its observer, what a node tells its heartbeat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg
from loguru import logger

from syft_flwr.monitor import Heartbeat
from tests.transport.helpers import APP, datasite, federation, make_app, query_message

DELTAS = [[np.full(3, 1.0)], [np.full(3, 2.0)]]
COUNTS = [1, 3]


class Recorder:
    """A GridObserver that writes down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.calls.append((name, *args))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def of(self, name: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == name]


class Broken:
    """An observer whose every call raises."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def fail(*args):
            raise RuntimeError(f"{name} is broken")

        return fail


def _failing_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        raise ValueError("no rows")

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        raise ValueError("no rows")

    return app


def test_the_grid_tells_its_observer_each_step_of_the_run(tmp_path: Path) -> None:
    recorder = Recorder()
    do1, do2 = datasite(1), datasite(2)
    kwargs = {"grid_kwargs": {"observer": recorder}, "apps": {2: _failing_app()}}
    with federation(tmp_path, DELTAS, COUNTS, **kwargs) as fed:
        FedAvg(min_available_nodes=2, min_train_nodes=1, min_evaluate_nodes=1).start(
            fed.grid, ArrayRecord([np.zeros(3)]), num_rounds=2
        )
        run_id = fed.grid.run.run_id
        assert "run_finished" not in recorder.names()
        fed.grid.finish()
        fed.grid.close()  # finishing twice tells the observer once

    names = recorder.names()
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert recorder.of("run_started") == [(run_id, APP, [do1, do2])]
    assert [r for r, _ in recorder.of("round_started")] == [1, 2]
    # each round has a train and an evaluate exchange with both datasites
    assert sorted(e for e, r, n in recorder.of("message_sent") if r == 1) == [do1, do1, do2, do2]
    assert all(n > 0 for _, _, n in recorder.of("message_sent"))
    replies = recorder.of("reply_received")
    assert len(replies) == 8
    assert all(latency > 0 and nbytes > 0 for _, _, latency, nbytes, _ in replies)
    errors = {(email, error is None) for email, _, _, _, error in replies}
    assert errors == {(do1, True), (do2, False)}
    assert any("no rows" in error for _, _, _, _, error in replies if error)
    finished = recorder.of("round_finished")
    assert [r for r, _, _ in finished] == [1, 1, 2, 2]
    assert all(answered == [do1] and set(failed) == {do2} for _, answered, failed in finished)
    ((ok, failures),) = recorder.of("run_finished")
    assert ok is False and set(failures) == {do2} and "no rows" in failures[do2]


def test_a_missing_datasite_and_a_broken_observer_never_break_the_run(tmp_path: Path) -> None:
    recorder, lines = Recorder(), []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        kwargs = {"grid_kwargs": {"observer": recorder}, "start": [1], "timeout": 0.5}
        with federation(tmp_path, DELTAS, COUNTS, **kwargs) as fed:
            grid = fed.grid
            grid._observer = Broken()  # the same grid, now with an observer that raises
            replies = grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2)])
            assert len(list(replies)) == 1
            grid._observer = recorder
            grid.send_and_receive([query_message(grid, datasite(i)) for i in (1, 2)])
    finally:
        logger.remove(sink)
    assert any("observer Broken.round_started failed" in line for line in lines)
    ((email, round_, waited),) = recorder.of("datasite_missing")
    assert email == datasite(2) and round_ == 2 and waited >= 0.5
    ((_, answered, failed),) = recorder.of("round_finished")
    assert answered == [datasite(1)] and "no reply within 0.5 s" in failed[datasite(2)]
    ((ok, failures),) = recorder.of("run_finished")  # close() finished the run
    assert ok is False and datasite(2) in failures


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


def test_no_observer_and_no_heartbeat_cost_nothing(tmp_path: Path) -> None:
    with federation(tmp_path, DELTAS[:1], COUNTS[:1], app=make_app()) as fed:
        assert len(list(fed.grid.send_and_receive([query_message(fed.grid, datasite(1))]))) == 1
        fed.grid.finish(ok=True, failures={})  # no observer: nothing to tell, no error
