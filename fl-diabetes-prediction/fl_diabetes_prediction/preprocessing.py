"""Federated imputation and standardisation statistics.

Before training, every datasite answers one QUERY with sums over its training split: per
feature the number of non-missing values, their sum and their sum of squares, plus its row and
positive-label counts (:class:`LocalSums`). Nothing else leaves the datasite. The aggregator adds
them up and derives, exactly as if the data were pooled (:class:`FeatureStats`):

- the imputation value of each feature: the mean of its non-missing values;
- the mean and (population) standard deviation of each feature after imputation, used to
  standardise it.

After mean imputation the mean is unchanged, and the sum of squares grows by one squared mean
per imputed value, so a single round of sums is enough for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from fl_diabetes_prediction.data import FEATURES


@dataclass(frozen=True)
class LocalSums:
    """The aggregates one datasite shares about its training split."""

    rows: int
    positives: int
    present: np.ndarray  # per feature: number of non-missing values
    sums: np.ndarray  # per feature: sum of the non-missing values
    sumsq: np.ndarray  # per feature: sum of their squares

    @classmethod
    def of(cls, features: np.ndarray, labels: np.ndarray) -> LocalSums:
        observed = ~np.isnan(features)
        values = np.where(observed, features, 0.0)
        return cls(
            rows=int(features.shape[0]),
            positives=int(labels.sum()),
            present=observed.sum(axis=0).astype(float),
            sums=values.sum(axis=0),
            sumsq=(values**2).sum(axis=0),
        )

    def to_metrics(self) -> dict[str, Any]:
        """As values of a Flower MetricRecord."""
        return {
            "rows": self.rows,
            "positives": self.positives,
            "present": self.present.tolist(),
            "sums": self.sums.tolist(),
            "sumsq": self.sumsq.tolist(),
        }

    @classmethod
    def from_metrics(cls, record: Mapping[str, Any]) -> LocalSums:
        try:
            sums = cls(
                rows=int(record["rows"]),
                positives=int(record["positives"]),
                present=np.asarray(record["present"], dtype=float),
                sums=np.asarray(record["sums"], dtype=float),
                sumsq=np.asarray(record["sumsq"], dtype=float),
            )
        except KeyError as exc:
            raise ValueError(f"a datasite's statistics lack {exc}") from exc
        for name in ("present", "sums", "sumsq"):
            if getattr(sums, name).shape != (len(FEATURES),):
                raise ValueError(
                    f"a datasite sent {name} for {getattr(sums, name).size} features, "
                    f"expected {len(FEATURES)}"
                )
        return sums


@dataclass(frozen=True)
class FeatureStats:
    """Imputation values and standardisation parameters, one entry per feature."""

    impute: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    rows: int
    positives: int

    @classmethod
    def combine(cls, parts: Iterable[LocalSums]) -> FeatureStats:
        parts = list(parts)
        if not parts:
            raise ValueError("no datasite sent statistics: cannot impute or standardise")
        rows = sum(p.rows for p in parts)
        present = np.sum([p.present for p in parts], axis=0)
        sums = np.sum([p.sums for p in parts], axis=0)
        sumsq = np.sum([p.sumsq for p in parts], axis=0)
        empty = [name for name, n in zip(FEATURES, present, strict=True) if n == 0]
        if empty:
            raise ValueError(
                f"no datasite has a single value of {', '.join(empty)}: cannot impute it"
            )
        impute = sums / present
        # Imputed rows add the mean to the sum (so the mean stays) and its square to sumsq.
        sumsq_imputed = sumsq + (rows - present) * impute**2
        variance = np.maximum(sumsq_imputed / rows - impute**2, 0.0)
        std = np.sqrt(variance)
        std[std == 0.0] = 1.0  # a constant feature: centre it, do not divide by zero
        return cls(
            impute=impute,
            mean=impute.copy(),
            std=std,
            rows=rows,
            positives=sum(p.positives for p in parts),
        )

    @classmethod
    def of(cls, features: np.ndarray, labels: np.ndarray) -> FeatureStats:
        """The statistics of pooled data (the centralised baseline)."""
        return cls.combine([LocalSums.of(features, labels)])

    def preprocessor(self) -> Pipeline:
        """scikit-learn's ``SimpleImputer`` (means) then ``StandardScaler``, fitted on these
        federated statistics instead of on one datasite's rows."""
        imputer = SimpleImputer(strategy="mean").fit(self.impute[None, :])  # mean of one row
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = self.mean, self.std, self.std**2
        scaler.n_features_in_, scaler.n_samples_seen_ = len(self.mean), self.rows
        return make_pipeline(imputer, scaler)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Impute missing values, then standardise (:meth:`preprocessor`)."""
        return self.preprocessor().transform(features)

    def to_dict(self) -> dict[str, Any]:
        """JSON- and ConfigRecord-friendly (lists of floats; exact round trip)."""
        return {
            "impute": self.impute.tolist(),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "rows": self.rows,
            "positives": self.positives,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "") -> FeatureStats:
        try:
            return cls(
                impute=np.asarray(data[prefix + "impute"], dtype=float),
                mean=np.asarray(data[prefix + "mean"], dtype=float),
                std=np.asarray(data[prefix + "std"], dtype=float),
                rows=int(data[prefix + "rows"]),
                positives=int(data[prefix + "positives"]),
            )
        except KeyError as exc:
            raise ValueError(
                f"preprocessing statistics lack {exc}: the ServerApp sends them with every "
                "train and evaluate message"
            ) from exc

    def to_config(self, prefix: str = "prep-") -> dict[str, Any]:
        return {prefix + key: value for key, value in self.to_dict().items()}
