"""The aggregator's side: query every datasite, add up their statistics, write the results.

Each round sends one QUERY to every node of the grid. Error replies, malformed replies and
datasites that stay silent are logged and recorded in ``summary.json``. A round in which no
datasite answered validly raises at once. If any datasite failed in the last round, the
aggregate would leave it out: ``summary.json`` is still written (marked ``"complete": false``,
with the failures, so they can be read) but no figures are drawn and the ServerApp raises,
naming each failed datasite and why -- unless the run config sets ``allow-partial = true``,
in which case the partial aggregate is written in full and only logged as a warning.
Outputs go to ``figures/`` in the project folder (next to pyproject.toml), whatever the
current directory:

- ``figures/<feature>_histogram.png`` per histogram feature (Glucose, BMI, Age);
- ``figures/summary.json``: rows per outcome; per feature the totals per outcome (count, sum,
  mean, zeros) and, for histogram features, the bin edges and counts per outcome; the number
  of datasites that answered and of rounds, the rows each datasite contributed, and who
  failed in which round.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, MessageType
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from fed_analytics_diabetes.figures import histogram_png
from fed_analytics_diabetes.settings import bin_edges
from fed_analytics_diabetes.statistics import Statistics, query_content

app = ServerApp()
PROJECT_DIR = Path(__file__).resolve().parents[1]
FIGURES_DIR = PROJECT_DIR / "figures"
APP_NAME = "fed-analytics-diabetes"


@dataclass
class RoundResult:
    """Who answered a round validly (node id -> statistics) and who failed (name -> why)."""

    server_round: int
    answered: dict[int, Statistics] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def datasite_name(grid: Grid, node_id: int) -> str:
    """The datasite's email when the grid knows it (syft_flwr's grid does), else the node id."""
    email_of = getattr(grid, "email_of", None)
    if callable(email_of):
        try:
            return str(email_of(node_id))
        except (KeyError, ValueError):
            pass
    return f"node {node_id}"


def query_round(
    grid: Grid, edges: dict[str, list[float]], server_round: int, timeout: float | None
) -> RoundResult:
    """Send one QUERY to every node and sort the replies into answers and failures."""
    node_ids = sorted(grid.get_node_ids())
    if not node_ids:
        raise RuntimeError(
            "the grid has no datasites: bootstrap the app with at least one datasite "
            "(syft_flwr.bootstrap(..., datasites=[...])) before running it"
        )
    result = RoundResult(server_round, names={n: datasite_name(grid, n) for n in node_ids})
    messages = [
        Message(
            query_content(edges),
            dst_node_id=node_id,
            message_type=MessageType.QUERY,
            group_id=str(server_round),
        )
        for node_id in node_ids
    ]
    replied: set[int] = set()
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node_id = reply.metadata.src_node_id
        name = result.names.get(node_id) or datasite_name(grid, node_id)
        if node_id not in result.names or node_id in replied:
            why = "unexpected" if node_id not in result.names else "a second"
            log(logging.WARNING, "round %d: ignoring %s reply from %s", server_round, why, name)
            continue
        replied.add(node_id)
        if reply.has_error():
            reason = f"error reply (code {reply.error.code}): {reply.error.reason}"
        else:
            try:
                result.answered[node_id] = Statistics.from_recorddict(reply.content, edges)
                continue
            except ValueError as exc:
                reason = f"malformed reply: {exc}"
        result.failed[name] = reason
        log(logging.WARNING, "round %d: %s failed: %s", server_round, name, reason)
    for node_id in node_ids:
        if node_id not in replied:
            result.failed[result.names[node_id]] = "no reply"
            log(logging.WARNING, "round %d: no reply from %s", server_round, result.names[node_id])
    return result


class PartialAggregateError(RuntimeError):
    """Some datasite failed in the last round, so the aggregate leaves out its data."""


def allow_partial(config: Mapping[str, Any]) -> bool:
    """The run config's ``allow-partial`` (default false): accept an aggregate that leaves
    out datasites that failed in the last round."""
    value = config.get("allow-partial", False)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"run config allow-partial must be true or false, got {value!r}")
    return value


def write_outputs(
    stats: Statistics,
    rounds: list[RoundResult],
    out_dir: Path = FIGURES_DIR,
    *,
    figures: bool = True,
) -> dict[str, Any]:
    """Write summary.json of the last round and, with ``figures``, its histograms (without,
    histograms of an earlier run are removed so none contradicts the summary)."""
    last = rounds[-1]
    summary: dict[str, Any] = {
        "app": APP_NAME,
        "complete": not last.failed,
        "rounds": len(rounds),
        "datasites": len(last.answered),
        "answered": sorted(last.names[n] for n in last.answered),
        "rows_by_datasite": {
            last.names[n]: sum(part.rows.values())
            for n, part in sorted(last.answered.items(), key=lambda item: last.names[item[0]])
        },
        "failed": dict(sorted(last.failed.items())),
        "history": [
            {
                "round": r.server_round,
                "answered": sorted(r.names[n] for n in r.answered),
                "failed": dict(sorted(r.failed.items())),
            }
            for r in rounds
        ],
        **stats.to_summary(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for feature in stats.histograms:
        png = out_dir / f"{feature}_histogram.png"
        if figures:
            histogram_png(stats, feature, png, datasites=len(last.answered))
        else:
            png.unlink(missing_ok=True)
    _write_text(out_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num-server-rounds`` query rounds; write the aggregate of the last one."""
    config = context.run_config
    num_rounds = int(config.get("num-server-rounds", 1))
    if num_rounds < 1:
        raise ValueError(f"num-server-rounds must be at least 1, got {num_rounds}")
    edges = bin_edges(config)
    timeout = float(config.get("round-timeout", 0.0)) or None  # 0: the grid's own limit
    partial_ok = allow_partial(config)

    rounds: list[RoundResult] = []
    for server_round in range(1, num_rounds + 1):
        result = query_round(grid, edges, server_round, timeout)
        rounds.append(result)
        if not result.answered:
            failures = "; ".join(f"{who}: {why}" for who, why in result.failed.items())
            raise RuntimeError(
                f"round {server_round}: no datasite answered with valid statistics "
                f"({failures}). See each datasite's log for the cause"
            )
        log(
            logging.INFO,
            "round %d: %d of %d datasite(s) answered",
            server_round,
            len(result.answered),
            len(result.names),
        )

    last = rounds[-1]
    parts = list(last.answered.values())
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    summary = write_outputs(total, rounds, figures=partial_ok or not last.failed)
    if last.failed:
        failures = "; ".join(f"{who}: {why}" for who, why in sorted(last.failed.items()))
        left_out = f"{len(last.failed)} of {len(last.names)} datasite(s) ({failures})"
        if not partial_ok:
            raise PartialAggregateError(
                f"round {num_rounds}: the aggregate leaves out {left_out}; "
                f"{FIGURES_DIR / 'summary.json'} records them (no figures drawn). "
                "See each datasite's log for the cause, or set allow-partial = true in the "
                "run config to accept a partial aggregate"
            )
        log(logging.WARNING, "allow-partial: the aggregate leaves out %s", left_out)
    log(
        logging.INFO,
        "wrote %s: %s patients from %d datasite(s)",
        FIGURES_DIR,
        sum(summary["rows"].values()),
        summary["datasites"],
    )
