"""The statistics a datasite shares, how they travel in a Flower message, and how they add up.

Per outcome ``y`` a datasite shares, for every feature, the count of non-missing values, their
sum and mean and the number of zeros, and for the histogram features the counts per bin (plus
the values below the first and above the last edge). Counts are integers and stay exact;
sums add up, so the aggregate equals the statistics of the union of all datasites' rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from flwr.app import ConfigRecord, MetricRecord, RecordDict

from fed_analytics_diabetes.settings import FEATURES, LABEL, OUTCOMES, check_edges

# the records of a reply
ROWS, TOTALS, HISTOGRAMS, BINS = "rows", "totals", "histograms", "bins"


@dataclass
class Totals:
    """Count of non-missing values, their sum, and how many are exactly 0."""

    count: int = 0
    sum: float = 0.0
    zeros: int = 0

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None


@dataclass
class Histogram:
    """Counts over ``edges`` (numpy.histogram semantics), plus values outside the edges."""

    edges: list[float]
    counts: list[int]
    below: int = 0
    above: int = 0


@dataclass
class Statistics:
    """One datasite's statistics, or the aggregate of several."""

    rows: dict[int, int] = field(default_factory=dict)  # outcome -> rows
    totals: dict[str, dict[int, Totals]] = field(default_factory=dict)  # feature -> outcome
    histograms: dict[str, dict[int, Histogram]] = field(default_factory=dict)

    # -- on the wire ---------------------------------------------------------------------
    def to_recorddict(self) -> RecordDict:
        rows = MetricRecord({_key(o): int(n) for o, n in self.rows.items()})
        totals: dict[str, Any] = {}
        for feature, per_outcome in self.totals.items():
            for o, t in per_outcome.items():
                k = _key(o, feature)
                totals[f"{k}|count"] = int(t.count)
                totals[f"{k}|sum"] = float(t.sum)
                totals[f"{k}|mean"] = float(t.mean) if t.mean is not None else 0.0
                totals[f"{k}|zeros"] = int(t.zeros)
        histograms: dict[str, Any] = {}
        bins: dict[str, Any] = {}
        for feature, per_outcome in self.histograms.items():
            for o, h in per_outcome.items():
                k = _key(o, feature)
                histograms[k] = [int(c) for c in h.counts]
                histograms[f"{k}|below"] = int(h.below)
                histograms[f"{k}|above"] = int(h.above)
                bins[feature] = [float(e) for e in h.edges]
        return RecordDict(
            {
                ROWS: rows,
                TOTALS: MetricRecord(totals),
                HISTOGRAMS: MetricRecord(histograms),
                BINS: ConfigRecord(bins),
            }
        )

    @classmethod
    def from_recorddict(cls, content: RecordDict, edges: dict[str, list[float]]) -> Statistics:
        """Decode and check a reply; ``edges`` are those the query asked for.

        Raises ValueError naming what is missing or inconsistent.
        """
        try:
            rows, totals = content.metric_records[ROWS], content.metric_records[TOTALS]
            histograms, bins = content.metric_records[HISTOGRAMS], content.config_records[BINS]
        except KeyError as exc:
            raise ValueError(f"the reply has no {exc.args[0]!r} record") from None
        stats = cls()
        try:
            for o in OUTCOMES:
                stats.rows[o] = _count(rows[_key(o)])
            for feature in FEATURES:
                stats.totals[feature] = {}
                for o in OUTCOMES:
                    k = _key(o, feature)
                    t = Totals(
                        _count(totals[f"{k}|count"]),
                        float(totals[f"{k}|sum"]),
                        _count(totals[f"{k}|zeros"]),
                    )
                    if t.count > stats.rows[o] or t.zeros > t.count:
                        raise ValueError(f"{k}: inconsistent counts {t} for {stats.rows[o]} rows")
                    stats.totals[feature][o] = t
            for feature, wanted in edges.items():
                if list(bins[feature]) != wanted:
                    raise ValueError(
                        f"{feature}: counted over edges {list(bins[feature])}, asked for {wanted}"
                    )
                stats.histograms[feature] = {}
                for o in OUTCOMES:
                    k = _key(o, feature)
                    counts = [_count(c) for c in histograms[k]]
                    h = Histogram(
                        list(wanted),
                        counts,
                        _count(histograms[f"{k}|below"]),
                        _count(histograms[f"{k}|above"]),
                    )
                    if len(counts) != len(wanted) - 1:
                        raise ValueError(f"{k}: {len(counts)} counts for {len(wanted) - 1} bins")
                    if sum(counts) + h.below + h.above != stats.totals[feature][o].count:
                        raise ValueError(f"{k}: histogram does not add up to the count")
                    stats.histograms[feature][o] = h
        except KeyError as exc:
            raise ValueError(f"the reply lacks {exc.args[0]!r}") from None
        return stats

    # -- aggregation ---------------------------------------------------------------------
    def __add__(self, other: Statistics) -> Statistics:
        total = Statistics()
        for o in OUTCOMES:
            total.rows[o] = self.rows.get(o, 0) + other.rows.get(o, 0)
        for feature in dict.fromkeys([*self.totals, *other.totals]):
            total.totals[feature] = {}
            for o in OUTCOMES:
                a = self.totals.get(feature, {}).get(o, Totals())
                b = other.totals.get(feature, {}).get(o, Totals())
                total.totals[feature][o] = Totals(
                    a.count + b.count, a.sum + b.sum, a.zeros + b.zeros
                )
        for feature in dict.fromkeys([*self.histograms, *other.histograms]):
            total.histograms[feature] = {}
            for o in OUTCOMES:
                a = self.histograms.get(feature, {}).get(o)
                b = other.histograms.get(feature, {}).get(o)
                if a is None or b is None:
                    total.histograms[feature][o] = a or b  # type: ignore[assignment]
                    continue
                if a.edges != b.edges:
                    raise ValueError(f"{feature}: cannot add histograms over different edges")
                total.histograms[feature][o] = Histogram(
                    list(a.edges),
                    [x + y for x, y in zip(a.counts, b.counts, strict=True)],
                    a.below + b.below,
                    a.above + b.above,
                )
        return total

    def to_summary(self) -> dict[str, Any]:
        """The JSON-ready summary: rows per outcome; per feature totals and histogram."""
        features: dict[str, Any] = {}
        for feature, per_outcome in self.totals.items():
            entry: dict[str, Any] = {
                "totals": {
                    str(o): {"count": t.count, "sum": t.sum, "mean": t.mean, "zeros": t.zeros}
                    for o, t in per_outcome.items()
                }
            }
            if feature in self.histograms:
                hists = self.histograms[feature]
                first = next(iter(hists.values()))
                entry["bin_edges"] = list(first.edges)
                entry["counts"] = {str(o): list(h.counts) for o, h in hists.items()}
                entry["below"] = {str(o): h.below for o, h in hists.items()}
                entry["above"] = {str(o): h.above for o, h in hists.items()}
            features[feature] = entry
        return {
            "label": LABEL,
            "rows": {str(o): n for o, n in self.rows.items()},
            "features": features,
        }


def local_statistics(table: pd.DataFrame, edges: dict[str, list[float]]) -> Statistics:
    """The statistics of one datasite's rows: ``table`` has the feature columns and ``y`` as
    floats, NaN where a value is missing (see :mod:`fed_analytics_diabetes.data`).

    Missing values are left out of counts, sums and histograms, as pandas does.
    """
    missing = [c for c in [*FEATURES, LABEL] if c not in table]
    if missing:
        raise ValueError(
            f"the data lacks column(s) {missing}; expected {[*FEATURES, LABEL]} "
            "(the Pima diabetes schema, label column 'y')"
        )
    labels = np.asarray(table[LABEL], dtype=float)
    unexpected = sorted(set(labels[~np.isin(labels, OUTCOMES)].tolist()), key=str)
    if unexpected:
        found = "missing values" if all(np.isnan(unexpected)) else unexpected
        raise ValueError(f"column {LABEL!r} must hold only {list(OUTCOMES)}; found {found}")
    columns = {feature: np.asarray(table[feature], dtype=float) for feature in FEATURES}
    stats = Statistics()
    for o in OUTCOMES:
        part = labels == o
        stats.rows[o] = int(part.sum())
        values: dict[str, np.ndarray] = {}  # the outcome's present values per feature
        for feature in FEATURES:
            column = columns[feature][part]
            present = ~np.isnan(column)
            values[feature] = column[present]
            stats.totals.setdefault(feature, {})[o] = Totals(
                count=int(present.sum()),
                # missing values count as 0 in the sum, in the same order as pandas adds them
                sum=float(np.where(present, column, 0.0).sum()),
                zeros=int((column == 0).sum()),
            )
        for feature, feature_edges in edges.items():
            counts, _ = np.histogram(values[feature], bins=feature_edges)
            stats.histograms.setdefault(feature, {})[o] = Histogram(
                list(feature_edges),
                [int(c) for c in counts],
                below=int((values[feature] < feature_edges[0]).sum()),
                above=int((values[feature] > feature_edges[-1]).sum()),
            )
    return stats


def edges_from_query(content: RecordDict) -> dict[str, list[float]] | None:
    """The bin edges a query asks for (checked), or None if it names none."""
    if BINS not in content.config_records:
        return None
    asked = dict(content.config_records[BINS])
    unknown = sorted(set(asked) - set(FEATURES))
    if unknown:
        raise ValueError(f"the query asks for histograms of unknown feature(s) {unknown}")
    return {f: check_edges(edges, what=f"query bins of {f}") for f, edges in asked.items()}


def query_content(edges: dict[str, list[float]]) -> RecordDict:
    """What the ServerApp sends: the bin edges to count over."""
    return RecordDict({BINS: ConfigRecord({f: [float(e) for e in v] for f, v in edges.items()})})


def _key(outcome: int, feature: str | None = None) -> str:
    return f"{feature}|y={outcome}" if feature else f"y={outcome}"


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer count, got {value!r}")
    return value
