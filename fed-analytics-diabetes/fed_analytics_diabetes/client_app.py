"""The datasite's side: answer a query with per-outcome counts, sums, means and histograms.

Only aggregate statistics leave the datasite, never a row. The data is read with pandas from
wherever the toolkit says (see :mod:`fed_analytics_diabetes.data`).
"""

from __future__ import annotations

import logging

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common import log

from fed_analytics_diabetes.data import load_node_data
from fed_analytics_diabetes.settings import bin_edges
from fed_analytics_diabetes.statistics import edges_from_query, local_statistics

app = ClientApp()


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Reply with this datasite's statistics, over the bin edges the query names."""
    edges = edges_from_query(msg.content)
    if edges is None:
        edges = bin_edges(context.run_config)
    # DatasetPathError says what to do: let it rise
    frame = load_node_data(context.node_config, context.run_config)
    stats = local_statistics(frame, edges)
    log(
        logging.INFO,
        "answering query %s with statistics of %d rows (%s)",
        msg.metadata.group_id,
        len(frame),
        ", ".join(f"y={o}: {n}" for o, n in stats.rows.items()),
    )
    return Message(stats.to_recorddict(), reply_to=msg)
