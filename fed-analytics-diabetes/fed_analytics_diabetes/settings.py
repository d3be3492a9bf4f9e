"""What both sides agree on: the columns, the outcomes and the histogram bin edges.

Bin edges come from the run config (``[tool.flwr.app.config]``, keys ``<feature>-bins``), with
the defaults below when a key is absent. The ServerApp sends the edges it uses in every query
and each datasite echoes them back, so both sides always count over identical bins.

A bin setting is either ``"start:stop:width"`` (equal-width bins) or a comma-separated list of
increasing edges (``"0,18.5,25,30,70"``). As in ``numpy.histogram``, every bin is half-open
``[a, b)`` except the last, which includes its right edge. Values outside ``[first, last]``
are never dropped silently: they are counted as ``below`` and ``above``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

LABEL = "y"
OUTCOMES = (0, 1)
OUTCOME_NAMES = {0: "no diabetes", 1: "diabetes"}
DATA_FILES = ("train.csv", "test.csv")

#: every feature column, with its unit (count, sum and mean are computed for all of them)
FEATURES: dict[str, str] = {
    "Pregnancies": "count",
    "Glucose": "mg/dL",
    "BloodPressure": "mm Hg",
    "SkinThickness": "mm",
    "Insulin": "µU/ml",
    "BMI": "kg/m²",
    "DiabetesPedigreeFunction": "score",
    "Age": "years",
}
#: features in which 0 stands for "not measured"
ZERO_IS_MISSING = ("Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI")

#: the histogram features and their default bins (the observed ranges are Glucose 0-199,
#: BMI 0-67.1, Age 21-81: these edges cover them, zeros included)
DEFAULT_BINS: dict[str, str] = {
    "Glucose": "0:200:10",
    "BMI": "0:70:5",
    "Age": "20:85:5",
}
HISTOGRAM_FEATURES = tuple(DEFAULT_BINS)
MAX_BINS = 100  # finer bins would come close to sharing individual values


def config_key(feature: str) -> str:
    """The run config key of a feature's bins, e.g. ``glucose-bins``."""
    return f"{feature.lower()}-bins"


def parse_edges(text: str, *, what: str = "bins") -> list[float]:
    """Bin edges from ``"start:stop:width"`` or ``"e0,e1,...,en"``, checked by check_edges."""
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, width = (float(part) for part in text.split(":"))
            if not width > 0:
                raise ValueError(f"width must be positive, got {width:g}")
            steps = round((stop - start) / width)
            if steps < 1 or not math.isclose(start + steps * width, stop, abs_tol=1e-9):
                raise ValueError(f"{stop:g} - {start:g} is not a whole number of widths {width:g}")
            edges = [round(start + i * width, 10) for i in range(steps + 1)]
        else:
            edges = [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise ValueError(
            f"{what} = {text!r} is not valid ({exc}): write 'start:stop:width', e.g. "
            "'0:200:10', or increasing edges separated by commas, e.g. '0,18.5,25,30,70'"
        ) from None
    return check_edges(edges, what=what)


def check_edges(edges: Any, *, what: str = "bins") -> list[float]:
    """``edges`` as floats if they are finite, strictly increasing and at most MAX_BINS bins."""
    try:
        values = [float(e) for e in edges]
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {edges!r} is not a list of numbers") from None
    if len(values) < 2:
        raise ValueError(f"{what}: need at least two edges (one bin), got {values}")
    if len(values) - 1 > MAX_BINS:
        raise ValueError(f"{what}: {len(values) - 1} bins asked for, at most {MAX_BINS} allowed")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what}: edges must be finite numbers, got {values}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{what}: edges must be strictly increasing, got {values}")
    return values


def bin_edges(run_config: Mapping[str, Any]) -> dict[str, list[float]]:
    """The bin edges of every histogram feature, from the run config or the defaults."""
    return {
        feature: parse_edges(
            run_config.get(config_key(feature), default), what=f"run config {config_key(feature)}"
        )
        for feature, default in DEFAULT_BINS.items()
    }
