"""The sandbox's parts on their own: limits, the pipe's frames, the bwrap command line, the
trusted client against a real sandboxed worker."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from flwr.app import Context, Message, MessageType, RecordDict

from syft_flwr.errors import SyftFlwrError
from syft_flwr.sandbox import DEFAULT_LIMITS, SandboxError, SandboxLimits, SandboxSpec
from syft_flwr.sandbox.bwrap import bwrap_argv
from syft_flwr.sandbox.client import SandboxedClientApp, remote_exception
from syft_flwr.sandbox.process import kill_tree
from syft_flwr.sandbox.protocol import read_frame, write_frames
from syft_flwr.transport import flwr_compat
from tests.sandbox.conftest import needs_bwrap
from tests.support import FIXTURES, copy_app


def test_limits_layer_field_by_field_and_refuse_nonsense() -> None:
    dataset = SandboxLimits(wall_seconds=10, processes=8)
    job = SandboxLimits(wall_seconds=3)
    merged = DEFAULT_LIMITS.over(dataset).over(job)
    assert merged.wall_seconds == 3 and merged.processes == 8
    assert merged.memory_bytes == DEFAULT_LIMITS.memory_bytes
    assert SandboxLimits.from_json(merged.to_json()) == merged
    with pytest.raises(SandboxError, match="positive"):
        SandboxLimits(memory_bytes=-1)
    with pytest.raises(SandboxError, match="unknown sandbox limits"):
        SandboxLimits.from_json({"gpus": 1})
    assert isinstance(SandboxError("x"), SyftFlwrError) and isinstance(
        SandboxError("x"), RuntimeError
    )


def test_frames_round_trip_and_a_cut_stream_is_the_end() -> None:
    buf = io.BytesIO()
    write_frames(buf, b"header", b"", b"x" * 100_000)
    buf.seek(0)
    assert [read_frame(buf) for _ in range(3)] == [b"header", b"", b"x" * 100_000]
    assert read_frame(buf) is None
    cut = io.BytesIO(buf.getvalue()[:20])
    assert read_frame(cut) == b"header" and read_frame(cut) is None


def test_a_remote_exception_keeps_its_type_name() -> None:
    exc = remote_exception("ValueError", "boom")
    assert type(exc).__qualname__ == "ValueError" and str(exc) == "boom"
    assert type(remote_exception("ValueError", "again")) is type(exc)
    assert isinstance(exc, SandboxError)


@needs_bwrap
def test_no_folder_bound_into_the_sandbox_may_hold_the_owners_keys(tmp_path: Path) -> None:
    keys = tmp_path / "private" / "keys"
    keys.mkdir(parents=True)
    with pytest.raises(SandboxError, match="would see"):
        bwrap_argv(["true"], read_only=[tmp_path], writable=[], env={}, workdir=tmp_path,
                   forbidden=[keys])  # fmt: skip
    argv = bwrap_argv(
        ["true"], read_only=[tmp_path / "private"], writable=[], env={"A": "1"},
        workdir=tmp_path, forbidden=[tmp_path / "other"],
    )  # fmt: skip
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def _spec(tmp_path: Path, data: Path, **limits) -> SandboxSpec:
    return SandboxSpec(
        data_dir=str(data),
        output_dir=str(tmp_path / "out"),
        scratch_dir=str(tmp_path / "scratch"),
        limits=DEFAULT_LIMITS.over(SandboxLimits(**limits)),
        report=str(tmp_path / "report.json"),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "scratch")},
    )


def _query(node_id: int) -> Message:
    flwr_compat.ensure_task_identity(1)
    message = Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.QUERY)
    flwr_compat.set_message_id(message, "m" * 64)
    return message


@needs_bwrap
def test_the_client_answers_like_the_app_in_process_and_reports_a_death(tmp_path: Path) -> None:
    app = copy_app(FIXTURES / "tiny_app", tmp_path / "app")
    data = tmp_path / "data"
    data.mkdir()
    (data / "values.txt").write_text("1\n2\n4\n")
    context = Context(
        run_id=1, node_id=5, node_config={"data-path": str(data)}, state=RecordDict(),
        run_config={},
    )  # fmt: skip
    dead = []
    with SandboxedClientApp(app, _spec(tmp_path, data), on_dead=lambda: dead.append(1)) as client:
        reply = client(_query(5), context)
        assert reply.content["stats"]["sum"] == 7.0 and reply.content["stats"]["count"] == 3
        (data / "FAIL").write_text("")  # the tiny app raises: the type name comes back
        with pytest.raises(RuntimeError, match="told to fail") as raised:
            client(_query(5), context)
        assert type(raised.value).__qualname__ == "RuntimeError"
        (data / "FAIL").unlink()
        kill_tree(client.pid)  # the sandbox dies: a clear error, the node is told
        with pytest.raises(SandboxError, match="ended"):
            client(_query(5), context)
        assert dead == [1]
        assert not (tmp_path / "report.json").exists()  # no limit ended it: nothing to report
    assert client._proc.poll() is not None
    assert sys.executable  # the worker ran this Python
