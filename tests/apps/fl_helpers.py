"""Test fixtures for the Flower apps: an in-process Grid and data split helpers.

:class:`InProcessGrid` is a test double of the transport, not part of the product: it hands
each Message to a ClientApp in this process, as a datasite's node loop would, serialising the
message both ways (as any real transport does, so no object is shared between the two sides),
inside ``dataset_path_context(<that datasite's data>)`` and with a Context whose node_config
carries ``data-path`` (plus any node config a data owner would set).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import pandas as pd
from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr.utils import dataset_path_context
from tests.support import REPO

ORIGINAL_CSV = (
    REPO / "datasets" / "pima-indians-diabetes-database" / "raw" / "pima-indians-diabetes.csv"
)
DATASET_DIR = REPO / "datasets" / "pima-indians-diabetes-database"
CLIENT_ERROR = 1  # Error.code of a reply whose ClientApp raised


def _copy(message: Message) -> Message:
    return message_from_proto(message_to_proto(message))


class InProcessGrid(Grid):
    """A Grid that runs each datasite's ClientApp in this process (a test fixture).

    ``fail`` may raise for a message before it is delivered, to simulate a stopped
    aggregator (raise from it) or a datasite that does not answer (return True).
    """

    def __init__(
        self,
        client_app: Any,
        data_dirs: Mapping[int, Path],
        *,
        run_config: Mapping[str, Any] | None = None,
        node_configs: Mapping[int, Mapping[str, Any]] | None = None,
        fail: Callable[[Message], bool] | None = None,
        run_id: int = 7,
    ):
        self.client_app = client_app
        self.data_dirs = dict(data_dirs)
        self.fail = fail
        self._run = Run.create_empty(run_id)
        self._replies: dict[str, Message] = {}
        self.delivered: list[Message] = []  # every message a datasite received
        self.replies: list[Message] = []  # every reply a datasite sent
        self.contexts = {
            node_id: Context(
                run_id=run_id,
                node_id=node_id,
                node_config={"data-path": str(path), **dict((node_configs or {}).get(node_id, {}))},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for node_id, path in self.data_dirs.items()
        }
        # What a ServerApp process has: Message() reads the run and node from here. Set only
        # if unset (process-wide; push_messages routes each message to this run anyway).
        for name, value in (("run_id", run_id), ("node_id", SUPERLINK_NODE_ID), ("task_id", 1)):
            if getattr(TaskIdentity, f"_{name}") is None:
                setattr(TaskIdentity, name, value)

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.data_dirs)

    def _deliver(self, message: Message) -> Message | None:
        node_id = message.metadata.dst_node_id
        if node_id not in self.data_dirs:
            raise ValueError(f"message for unknown node {node_id}")
        if self.fail is not None and self.fail(message):
            return None
        received = _copy(message)
        self.delivered.append(received)
        with dataset_path_context(self.data_dirs[node_id]):
            try:
                reply = self.client_app(received, self.contexts[node_id])
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
                reply = Message(Error(code=CLIENT_ERROR, reason=reason), reply_to=received)
        reply.metadata.__dict__["_message_id"] = uuid4().hex
        self.replies.append(reply)
        return _copy(reply)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for message in messages:
            metadata = message.metadata
            metadata.__dict__["_message_id"] = uuid4().hex
            metadata.__dict__["_run_id"] = self._run.run_id
            metadata.__dict__["_src_node_id"] = SUPERLINK_NODE_ID
            metadata.created_at = time.time()
            reply = self._deliver(message)
            if reply is not None:
                self._replies[metadata.message_id] = reply
            ids.append(metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return list(self.pull_messages(self.push_messages(messages)))


# -- data -----------------------------------------------------------------------------------
def real_split_dirs(kind: str = "private") -> list[Path] | None:
    """The two data owners' ``<kind>`` folders of datasets/, if they exist yet."""
    dirs = [DATASET_DIR / f"do{i}" / kind for i in (1, 2)]
    if all((d / "train.csv").is_file() and (d / "test.csv").is_file() for d in dirs):
        return dirs
    return None


def make_split_dirs(root: Path, seed: int = 0, rows: int | None = None) -> list[Path]:
    """Two datasites' train/test CSVs (label ``y``) made from the original Pima file."""
    frame = pd.read_csv(ORIGINAL_CSV).rename(columns={"Outcome": "y"})
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if rows is not None:
        frame = frame.iloc[:rows]
    dirs = []
    half = len(frame) // 2
    for i, part in enumerate((frame.iloc[:half], frame.iloc[half:]), start=1):
        folder = root / f"do{i}"
        folder.mkdir(parents=True)
        cut = int(len(part) * 0.8)
        part.iloc[:cut].to_csv(folder / "train.csv", index=False)
        part.iloc[cut:].to_csv(folder / "test.csv", index=False)
        dirs.append(folder)
    return dirs


def data_dirs(root: Path) -> list[Path]:
    """The real private splits when datasets/ has them, else splits made under ``root``."""
    return real_split_dirs() or make_split_dirs(root)


def load_script(path: Path, package: str) -> Any:
    """Import the script at ``path``, which imports ``package`` from its project folder, then
    put ``sys.path`` and that package's ``sys.modules`` entries back as they were (so another
    copy of the project still loads its own code)."""

    def owned(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    saved_path = list(sys.path)
    saved = {name: mod for name, mod in sys.modules.items() if owned(name)}
    for name in saved:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
        return module
    finally:
        sys.modules.pop(f"_script_{path.stem}", None)
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if owned(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def copy_project(source: Path, dest: Path) -> Path:
    """Copy an app without its outputs, so weights/ of the copy belong to one test."""
    shutil.copytree(
        source,
        dest,
        ignore=shutil.ignore_patterns(
            "__pycache__", "weights", "figures", "simulation_logs", "main.py"
        ),
    )
    return dest
