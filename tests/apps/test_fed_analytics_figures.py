"""The histogram's legend stays clear of the bars (the Age histogram's tallest ones first)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tests.support import REPO

APP = REPO / "fed-analytics-diabetes"
PACKAGE = "fed_analytics_diabetes"
PIMA = REPO / "datasets" / "pima-indians-diabetes-database"


@pytest.fixture
def app() -> Iterator[SimpleNamespace]:
    saved_path = list(sys.path)
    saved = {n: m for n, m in sys.modules.items() if n == PACKAGE or n.startswith(PACKAGE + ".")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(APP))
    try:
        yield SimpleNamespace(
            **{
                m: importlib.import_module(f"{PACKAGE}.{m}")
                for m in ("data", "figures", "settings", "statistics")
            }
        )
    finally:
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize("feature", ["Age", "Glucose", "BMI"])
def test_legend_does_not_cover_a_bar(app: SimpleNamespace, feature: str) -> None:
    s = app.settings
    table = pd.concat(
        [app.data.read_csv(path) for path in sorted(PIMA.glob("do*/private/*.csv"))],
        ignore_index=True,
    )
    edges = s.bin_edges({})
    stats = app.statistics.local_statistics(table, edges)
    fig = app.figures.histogram_figure(stats, feature, datasites=2)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(canvas.get_renderer())
    bars = [c for c in ax.collections]
    assert bars, "no bars drawn"
    tops = [
        (v[:, 0].min(), v[:, 0].max(), v[:, 1].max())
        for c in bars
        for v in (p.vertices for p in c.get_paths())
    ]
    covered = []
    for left, right, top in tops:
        (x0, y_top), (x1, _) = ax.transData.transform([(left, top), (right, 0)])
        if x1 > legend.x0 and x0 < legend.x1 and y_top > legend.y0:
            covered.append((left, right, top))
    assert not covered, f"the legend covers bars {covered}"
    tallest = max(t for _, _, t in tops)
    assert tallest > 0
