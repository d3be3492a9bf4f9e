"""Histogram figures of the aggregated counts, drawn with matplotlib.

matplotlib is imported with this module, so it loads with the ServerApp (a data owner's job
loads only the ClientApp and never imports it). Uses the object-oriented API (``Figure`` +
the Agg canvas): no pyplot, no global backend switch, safe in a thread of a simulation.
Drawing is most of a one-round simulation's own work, so the figures are built for speed:
the bars of an outcome are one collection (not an artist per bar), margins are fixed rather
than computed by a layout engine, PNGs are 900 pixels wide and compressed lightly, and with
more than 15 bin edges every other one is labelled.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fed_analytics_diabetes.settings import FEATURES, OUTCOME_NAMES, OUTCOMES, ZERO_IS_MISSING
from fed_analytics_diabetes.statistics import Statistics

COLORS = {0: "#4C72B0", 1: "#DD8452"}
#: the share of the plot's height the bars may use; the legend sits in the rest, above them
LEGEND_FREE = 0.8


def histogram_png(stats: Statistics, feature: str, path: Path, *, datasites: int) -> Path:
    """Draw ``feature``'s histogram per outcome into ``path`` (written whole, then renamed)."""
    fig = histogram_figure(stats, feature, datasites=datasites)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fig.savefig(temporary, format="png", pil_kwargs={"compress_level": 1})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def histogram_figure(stats: Statistics, feature: str, *, datasites: int) -> Figure:
    """``feature``'s histogram per outcome, its legend above the tallest bar."""
    hists = stats.histograms[feature]
    edges = hists[OUTCOMES[0]].edges
    fig = Figure(figsize=(10, 5.5), dpi=90)  # 900 x 495 pixels
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.1, top=0.93)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    share = 0.8 / len(OUTCOMES)
    tallest = max(max(hists[o].counts, default=0) for o in OUTCOMES) or 1
    handles = []
    for i, outcome in enumerate(OUTCOMES):
        h = hists[outcome]
        color = COLORS.get(outcome)
        bars = []  # drawn as one collection, not a Rectangle artist per bar
        for a, b, count in zip(edges, edges[1:], h.counts, strict=False):
            left, right = a + (b - a) * (0.1 + i * share), a + (b - a) * (0.1 + (i + 1) * share)
            bars.append([(left, 0), (left, count), (right, count), (right, 0)])
            if count:
                top = count + tallest * 0.005
                ax.text((left + right) / 2, top, str(count), ha="center", va="bottom", fontsize=7)
        ax.add_collection(PolyCollection(bars, facecolors=color, edgecolors="none"))
        label = f"y = {outcome}: {OUTCOME_NAMES[outcome]} (n = {sum(h.counts)})"
        handles.append(Patch(facecolor=color, label=label))
    if len(edges) <= 30:  # every edge up to 15, else every other (a tick costs ~2 ms to draw)
        ticks = edges if len(edges) <= 15 else edges[::2]
        ax.set_xticks(ticks, [f"{e:g}" for e in ticks], fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    # headroom above the tallest bar (and its label) for the legend: it never covers a bar
    ax.set_ylim(0, tallest * 1.12 / LEGEND_FREE)
    patients = sum(stats.rows.values())
    ax.set_title(
        f"{feature} by outcome — {patients} patients from {datasites} "
        f"datasite{'s' if datasites != 1 else ''}",
        y=1.0,  # where matplotlib would put it, but without measuring every tick label first
    )
    ax.set_xlabel(f"{feature} ({FEATURES[feature]})")
    ax.set_ylabel("patients (count)")
    ax.legend(handles=handles, title="outcome", loc="upper left", ncols=len(handles), fontsize=9)
    ax.grid(axis="y", alpha=0.3)

    notes = []
    if feature in ZERO_IS_MISSING:
        zeros = sum(stats.totals[feature][o].zeros for o in OUTCOMES)
        if zeros:
            notes.append(f"0 = not measured: {zeros} patient(s), counted in the first bin")
    outside = {
        "below": sum(hists[o].below for o in OUTCOMES),
        "above": sum(hists[o].above for o in OUTCOMES),
    }
    for where, n in outside.items():
        if n:
            notes.append(f"{n} value(s) {where} the bins (not drawn)")
    if notes:
        ax.text(
            0.99, 0.97, "\n".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=8
        )
    return fig
