"""Guards for the flwr internals the transport relies on (syft_flwr.transport.flwr_compat).

If one of these fails after a flwr upgrade, fix syft_flwr/transport/flwr_compat.py: it is
the only module that touches these names.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp import Grid

from syft_flwr.transport import DatasiteGrid, flwr_compat

HINT = (
    f"flwr {flwr_compat.FLWR_VERSION} changed an internal that syft_flwr relies on (tested "
    f"with {flwr_compat.FLWR_VERSION_TESTED}); update syft_flwr/transport/flwr_compat.py"
)


def _instruction() -> Message:
    flwr_compat.ensure_task_identity(123)
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.arange(6.0).reshape(2, 3)]),
            "config": ConfigRecord({"lr": 0.1, "name": "x", "raw": b"\x00\x01"}),
            "metrics": MetricRecord({"n": 3, "vals": [1.0, 2.0]}),
        }
    )
    return Message(content, 4242, "train.custom", ttl=600, group_id="7")


def test_message_constructor_works_after_ensure_task_identity() -> None:
    msg = _instruction()  # strategies call Message(content, dst_node_id, message_type)
    assert msg.metadata.dst_node_id == 4242, HINT


def test_ensure_task_identity_never_overrides() -> None:
    from flwr.supercore.task_identity import TaskIdentity

    flwr_compat.ensure_task_identity(1)
    before = (TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id)
    flwr_compat.ensure_task_identity(999_999)
    assert (TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id) == before, HINT


def test_set_message_id_and_route() -> None:
    msg = _instruction()
    flwr_compat.set_message_id(msg, "a" * 32)
    flwr_compat.set_route(msg, run_id=77, src_node_id=flwr_compat.SUPERLINK_NODE_ID)
    assert msg.metadata.message_id == "a" * 32, HINT
    assert msg.metadata.run_id == 77 and msg.metadata.src_node_id == 1, HINT


def test_serde_round_trip_keeps_ids_metadata_and_content() -> None:
    msg = _instruction()
    flwr_compat.set_message_id(msg, "b" * 32)
    flwr_compat.set_route(msg, run_id=5, src_node_id=flwr_compat.SUPERLINK_NODE_ID)
    back = flwr_compat.message_from_bytes(flwr_compat.message_to_bytes(msg))
    for name in (
        "message_id",
        "run_id",
        "src_node_id",
        "dst_node_id",
        "group_id",
        "ttl",
        "message_type",
        "created_at",
        "reply_to_message_id",
    ):
        assert getattr(back.metadata, name) == getattr(msg.metadata, name), f"{name}: {HINT}"
    np.testing.assert_array_equal(
        back.content["arrays"].to_numpy_ndarrays()[0], np.arange(6.0).reshape(2, 3)
    )
    assert dict(back.content["config"]) == {"lr": 0.1, "name": "x", "raw": b"\x00\x01"}, HINT
    assert dict(back.content["metrics"]) == {"n": 3, "vals": [1.0, 2.0]}, HINT


def test_reply_and_error_reply_keep_ids_through_serde() -> None:
    msg = _instruction()
    flwr_compat.set_message_id(msg, "c" * 32)
    reply = Message(RecordDict({"m": MetricRecord({"x": 1})}), reply_to=msg)
    error = Message(
        Error(code=flwr_compat.CLIENT_APP_RAISED_EXCEPTION, reason="E: x"), reply_to=msg
    )
    for r in (reply, error):
        flwr_compat.set_message_id(r, "d" * 32)
        flwr_compat.set_route(r, run_id=msg.metadata.run_id, src_node_id=4242)
        back = flwr_compat.message_from_bytes(flwr_compat.message_to_bytes(r))
        assert back.metadata.reply_to_message_id == "c" * 32, HINT
        assert back.metadata.message_id == "d" * 32, HINT
        assert back.metadata.src_node_id == 4242 and back.metadata.dst_node_id == 1, HINT
    back = flwr_compat.message_from_bytes(flwr_compat.message_to_bytes(error))
    assert back.has_error() and back.error.code == flwr_compat.CLIENT_APP_RAISED_EXCEPTION, HINT
    assert back.error.reason == "E: x", HINT


def test_make_message_builds_from_metadata() -> None:
    md = Metadata(
        run_id=1,
        message_id="e" * 32,
        src_node_id=1,
        dst_node_id=9,
        reply_to_message_id="",
        group_id="",
        created_at=1.0,
        ttl=10.0,
        message_type="query",
    )
    msg = flwr_compat.make_message(md, content=RecordDict())
    assert msg.metadata is md and msg.has_content(), HINT


def test_make_run_and_grid_run_copy() -> None:
    run = flwr_compat.make_run(31, {"lr": 0.5})
    assert isinstance(run, flwr_compat.Run) and run.run_id == 31, HINT
    assert run.override_config == {"lr": 0.5}, HINT
    copy = flwr_compat.Run(**vars(run))  # what Grid.run returns
    assert copy == run, HINT


def test_error_codes_and_superlink_id() -> None:
    from flwr.common.constant import ErrorCode

    assert flwr_compat.CLIENT_APP_RAISED_EXCEPTION == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert isinstance(flwr_compat.SUPERLINK_NODE_ID, int) and flwr_compat.SUPERLINK_NODE_ID > 0


def test_datasite_grid_implements_every_abstract_method_of_flwr_grid() -> None:
    abstract = set(getattr(Grid, "__abstractmethods__", set()))
    missing = set(getattr(DatasiteGrid, "__abstractmethods__", set()))
    assert not missing, f"DatasiteGrid lacks {sorted(missing)}: {HINT}"
    expected = {
        "set_run",
        "run",
        "create_message",
        "get_node_ids",
        "push_messages",
        "pull_messages",
        "send_and_receive",
    }
    assert abstract == expected, f"flwr's Grid now declares {sorted(abstract)}: {HINT}"
    params = inspect.signature(Grid.send_and_receive).parameters
    assert "timeout" in params and params["timeout"].kind is inspect.Parameter.KEYWORD_ONLY, HINT


def test_telemetry_is_off_once_the_toolkit_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLWR_TELEMETRY_ENABLED"}
    code = "import syft_flwr, flwr.supercore.telemetry as t; print(t.FLWR_TELEMETRY_ENABLED)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


def test_importing_the_transport_leaves_flwr_telemetry_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLWR_TELEMETRY_ENABLED"}
    code = (
        "import json, syft_flwr.transport, flwr.supercore.telemetry as t, flwr.serverapp;"
        "print(json.dumps(t.FLWR_TELEMETRY_ENABLED))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == "0"


@pytest.mark.parametrize("name", ["_message_id", "_run_id", "_src_node_id"])
def test_metadata_private_fields_exist(name: str) -> None:
    md = _instruction().metadata
    assert name in md.__dict__, HINT


def test_parse_config_args_reads_run_config_strings_with_toml_values() -> None:
    from flwr.common import config as flwr_config

    assert callable(getattr(flwr_config, "parse_config_args", None)), HINT
    got = flwr_compat.parse_config_args(
        ["num-server-rounds=3 lr=0.05 strategy='fed avg' verbose=true", 'name="x y"']
    )
    assert got == {
        "num-server-rounds": 3,
        "lr": 0.05,
        "strategy": "fed avg",
        "verbose": True,
        "name": "x y",
    }, HINT
    assert type(got["num-server-rounds"]) is int and type(got["verbose"]) is bool, HINT
    assert flwr_compat.parse_config_args([]) == {}, HINT


@pytest.mark.parametrize("line", ["lr=not-toml", "rounds=[1,"])
def test_parse_config_args_raises_value_error_on_malformed_strings(line: str) -> None:
    with pytest.raises(ValueError) as info:
        flwr_compat.parse_config_args([line])
    assert type(info.value) is ValueError, HINT  # not flwr's click.ClickException
    assert str(info.value), HINT


def test_runtime_parses_config_through_flwr_compat(monkeypatch) -> None:
    from syft_flwr import runtime

    assert "flwr.common" not in inspect.getsource(runtime)  # no contact outside flwr_compat
    with pytest.raises(ValueError, match="key=value pairs"):
        runtime.parse_config("a=b c")
    seen: list[list[str]] = []
    monkeypatch.setattr(flwr_compat, "parse_config_args", lambda lines: seen.append(lines) or {})
    assert runtime.parse_config("a=1") == {} and seen == [["a=1"]]


def test_the_simulation_engine_runner_takes_what_flwr_compat_passes() -> None:
    """benchmarks/scale.py compares with Flower's engine through run_flower_simulation."""
    ray = pytest.importorskip("ray", reason="flwr[simulation] (the bench extra) not installed")
    assert ray is not None
    import importlib

    module = importlib.import_module("flwr.simulation.run_simulation")
    params = inspect.signature(module._run_simulation).parameters
    passed = {"num_supernodes", "exit_event", "client_app", "server_app", "backend_name"}
    passed |= {"backend_config", "server_app_context", "app_dir", "is_app"}
    assert passed <= set(params), HINT
