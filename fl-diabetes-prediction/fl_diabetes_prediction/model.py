"""The model: scikit-learn's logistic regression trained by SGD, from the global model.

Each datasite turns the global arrays (``coef`` and ``intercept``: the classifier's ``coef_``
and ``intercept_``, what FedAvg averages) into an ``SGDClassifier`` with the log loss and
trains it for a few epochs of its own rows with ``partial_fit``; the new ``coef_`` and
``intercept_`` go back. Everything is deterministic given the random generator passed in,
so a federated run is reproducible from its seed (see :func:`training_rng`).

ROC AUC cannot be averaged across datasites. Each datasite instead returns, per class, a
histogram of its predicted probabilities over fixed bins on [0, 1]; the aggregator adds the
histograms and computes the AUC of the pooled scores from them (:func:`auc_from_histograms`).
This equals the exact AUC of the pooled test data when no positive and negative share a bin;
pairs that do are counted as ties (half), so the error is at most half their share of all
positive-negative pairs, which :func:`auc_from_histograms` also returns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

Params = dict[str, np.ndarray]
CLASSES = np.array([0.0, 1.0])


def init_params(num_features: int, seed: int) -> Params:
    """Small random coefficients from ``seed``, zero intercept."""
    rng = np.random.default_rng([int(seed), 0])
    return {
        "coef": rng.normal(0.0, 0.01, size=(1, num_features)),
        "intercept": np.zeros(1),
    }


def training_rng(seed: int, server_round: int, node_id: int) -> np.random.Generator:
    """The shuffling generator of one datasite in one round: the same on every rerun."""
    return np.random.default_rng([int(seed), int(server_round), int(node_id) & (2**64 - 1)])


def check_params(params: Params, num_features: int) -> Params:
    coef = np.asarray(params.get("coef"), dtype=float)
    intercept = np.asarray(params.get("intercept"), dtype=float).reshape(-1)
    if coef.shape != (1, num_features) or intercept.shape != (1,):
        raise ValueError(
            f"model arrays have shapes coef={coef.shape}, intercept={intercept.shape}; "
            f"expected (1, {num_features}) and (1,)"
        )
    return {"coef": coef, "intercept": intercept}


def classifier(params: Params, learning_rate: float = 0.01) -> SGDClassifier:
    """An ``SGDClassifier`` (log loss, constant step) that starts from ``params``."""
    model = SGDClassifier(
        loss="log_loss",
        penalty=None,
        learning_rate="constant",
        eta0=learning_rate,
        shuffle=False,  # the batches come shuffled by the round's generator
    )
    model.classes_ = CLASSES
    model.coef_ = np.array(params["coef"], dtype=float)
    model.intercept_ = np.array(params["intercept"], dtype=float)
    model.n_features_in_ = model.coef_.shape[1]
    return model


def params_of(model: SGDClassifier) -> Params:
    return {"coef": model.coef_.copy(), "intercept": model.intercept_.copy()}


def predict_proba(params: Params, features: np.ndarray) -> np.ndarray:
    """The probability of diabetes for each row."""
    return classifier(params).predict_proba(features)[:, 1]


def train(
    params: Params,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    rng: np.random.Generator,
    proximal_mu: float = 0.0,
) -> tuple[Params, float]:
    """``epochs`` passes of ``SGDClassifier.partial_fit`` over shuffled batches of
    ``batch_size`` rows; returns the new params and their log loss on these rows.

    With ``proximal_mu > 0`` (FedProx) each batch ends with the proximal step of the term
    ``mu/2 * ||theta - theta_0||^2``, once per row of the batch, which keeps the local model
    near the global one it started from.
    """
    start = params_of(classifier(params))
    model = classifier(params, learning_rate)
    n = len(labels)
    pull = 1.0 - learning_rate * proximal_mu
    for _ in range(epochs):
        order = rng.permutation(n)
        # SGD steps row by row, in order: one call per batch only where a proximal step
        # follows each batch (the same steps as one call over the epoch's rows otherwise)
        step = batch_size if proximal_mu else max(n, 1)
        for begin in range(0, n, step):
            idx = order[begin : begin + step]
            with warnings.catch_warnings():  # one pass per call is what partial_fit is for
                warnings.simplefilter("ignore")
                model.partial_fit(features[idx], labels[idx], classes=CLASSES)
            if proximal_mu:
                shrink = pull ** len(idx)
                model.coef_ = start["coef"] + (model.coef_ - start["coef"]) * shrink
                start_b = start["intercept"]
                model.intercept_ = start_b + (model.intercept_ - start_b) * shrink
    trained = params_of(model)
    if not n:
        return trained, float("nan")
    return trained, float(log_loss(labels, predict_proba(trained, features), labels=CLASSES))


@dataclass(frozen=True)
class Evaluation:
    """What one datasite reports about the global model on its test split."""

    loss: float
    accuracy: float
    num_examples: int
    hist_pos: np.ndarray  # predicted-probability histogram of the positives
    hist_neg: np.ndarray  # ... and of the negatives


def score_histograms(
    probs: np.ndarray, labels: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    pos, _ = np.histogram(probs[labels == 1], bins=edges)
    neg, _ = np.histogram(probs[labels == 0], bins=edges)
    return pos.astype(float), neg.astype(float)


def evaluate(params: Params, features: np.ndarray, labels: np.ndarray, bins: int) -> Evaluation:
    probs = predict_proba(params, features)
    pos, neg = score_histograms(probs, labels, bins)
    return Evaluation(
        loss=float(log_loss(labels, probs, labels=CLASSES)),
        accuracy=float(accuracy_score(labels, probs >= 0.5)),
        num_examples=len(labels),
        hist_pos=pos,
        hist_neg=neg,
    )


def auc_from_histograms(hist_pos: np.ndarray, hist_neg: np.ndarray) -> tuple[float, float]:
    """``(auc, max_error)`` from per-class score histograms (pooled over datasites).

    AUC = P(score of a random positive > score of a random negative), ties counted half.
    ``max_error`` bounds the distance to the exact AUC of the unbinned scores.
    """
    hist_pos, hist_neg = np.asarray(hist_pos, float), np.asarray(hist_neg, float)
    pairs = hist_pos.sum() * hist_neg.sum()
    if pairs == 0:
        return float("nan"), float("nan")
    negatives_below = np.cumsum(hist_neg) - hist_neg
    same_bin = hist_pos * hist_neg
    auc = (np.sum(hist_pos * negatives_below) + 0.5 * np.sum(same_bin)) / pairs
    return float(auc), float(0.5 * np.sum(same_bin) / pairs)


def exact_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC of unbinned scores (scikit-learn's), NaN when a class is absent."""
    labels = np.asarray(labels, float)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, probs))
