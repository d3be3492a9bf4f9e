"""The datasite's side: answer a query with per-outcome counts, sums, means and histograms.

Only aggregate statistics leave the datasite, never a row. The data is wherever the toolkit
says (``get_syftbox_dataset_path()``: mock data in a simulation, private data in a data
owner's job); ``train.csv`` and ``test.csv`` there are read together.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common import log

from fed_analytics_diabetes.settings import DATA_FILES, FEATURES, LABEL, bin_edges
from fed_analytics_diabetes.statistics import edges_from_query, local_statistics
from fed_analytics_diabetes.table import Table, concat, read_columns, rows
from syft_flwr.utils import get_syftbox_dataset_path

app = ClientApp()


def load_data(data_dir: Path) -> Table:
    """The feature and label columns of ``train.csv`` and ``test.csv`` in ``data_dir``, one
    after the other (at least one of the files must exist)."""
    present = [data_dir / name for name in DATA_FILES if (data_dir / name).is_file()]
    if not present:
        found = sorted(p.name for p in data_dir.iterdir()) if data_dir.is_dir() else []
        raise FileNotFoundError(
            f"no {' or '.join(DATA_FILES)} in {data_dir} (found: {found or 'nothing'}): the "
            "dataset folder must hold the Pima diabetes CSVs with a 'y' label column"
        )
    for name in DATA_FILES:
        if data_dir / name not in present:
            log(logging.WARNING, "%s has no %s; using %s only", data_dir, name, present[0].name)
    return concat([read_columns(path, [*FEATURES, LABEL]) for path in present])


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Reply with this datasite's statistics, over the bin edges the query names."""
    data_dir = get_syftbox_dataset_path()  # DatasetPathError says what to do: let it rise
    edges = edges_from_query(msg.content)
    if edges is None:
        edges = bin_edges(context.run_config)
    table = load_data(data_dir)
    stats = local_statistics(table, edges)
    log(
        logging.INFO,
        "answering query %s with statistics of %d rows (%s)",
        msg.metadata.group_id,
        rows(table),
        ", ".join(f"y={o}: {n}" for o, n in stats.rows.items()),
    )
    return Message(stats.to_recorddict(), reply_to=msg)
