"""A datasite node in its own OS process, for tests/transport/test_processes.py.

    python node_script.py <network_root> <app_name> <email> <aggregator> <data_path>

Serves a tiny ClientApp (statistics of ``<data_path>/values.txt``) until a stop message or
the idle timeout, then prints the NodeResult as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from syft_flwr.network import Network
from syft_flwr.transport import DatasiteNode
from syft_flwr.utils import get_syftbox_dataset_path

app = ClientApp()


@app.query()
def stats(msg: Message, context: Context) -> Message:
    values = np.loadtxt(get_syftbox_dataset_path() / "values.txt", ndmin=1)
    shift = float(msg.content["config"]["shift"])
    values = values + shift
    metrics = {"count": len(values), "sum": float(values.sum()), "sumsq": float((values**2).sum())}
    return Message(RecordDict({"stats": MetricRecord(metrics)}), reply_to=msg)


def main(root: str, app_name: str, email: str, aggregator: str, data_path: str) -> None:
    node = DatasiteNode(
        Network(Path(root)),
        app_name,
        email,
        aggregator,
        app,
        data_path=Path(data_path),
        idle_timeout=60,
    )
    result = node.serve()
    print(json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
