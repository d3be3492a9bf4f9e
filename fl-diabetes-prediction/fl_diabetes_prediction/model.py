"""Logistic regression in numpy: initialisation, SGD training, evaluation, federated ROC AUC.

Everything is deterministic given the random generator passed in, so a federated run is
reproducible from its seed (see :func:`training_rng`).

ROC AUC cannot be averaged across datasites. Each datasite instead returns, per class, a
histogram of its predicted probabilities over fixed bins on [0, 1]; the aggregator adds the
histograms and computes the AUC of the pooled scores from them (:func:`auc_from_histograms`).
This equals the exact AUC of the pooled test data when no positive and negative share a bin;
pairs that do are counted as ties (half), so the error is at most half their share of all
positive-negative pairs, which :func:`auc_from_histograms` also returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]
_EPS = 1e-12


def init_params(num_features: int, seed: int) -> Params:
    """Small random weights from ``seed``, zero bias."""
    rng = np.random.default_rng([int(seed), 0])
    return {
        "weights": rng.normal(0.0, 0.01, size=num_features),
        "bias": np.zeros(1),
    }


def training_rng(seed: int, server_round: int, node_id: int) -> np.random.Generator:
    """The shuffling generator of one datasite in one round: the same on every rerun."""
    return np.random.default_rng([int(seed), int(server_round), int(node_id) & (2**64 - 1)])


def check_params(params: Params, num_features: int) -> Params:
    weights = np.asarray(params.get("weights"), dtype=float)
    bias = np.asarray(params.get("bias"), dtype=float).reshape(-1)
    if weights.shape != (num_features,) or bias.shape != (1,):
        raise ValueError(
            f"model arrays have shapes weights={weights.shape}, bias={bias.shape}; expected "
            f"({num_features},) and (1,)"
        )
    return {"weights": weights, "bias": bias}


def predict_proba(params: Params, features: np.ndarray) -> np.ndarray:
    logits = features @ params["weights"] + params["bias"][0]
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    probs = np.clip(probs, _EPS, 1 - _EPS)
    return float(-np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs)))


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
    """Mini-batch SGD on the mean log loss; returns new params and the mean loss seen.

    With ``proximal_mu > 0`` (FedProx) the loss has the term ``mu/2 * ||theta - theta_0||^2``
    that keeps the local model near the global one it started from.
    """
    start = {k: v.copy() for k, v in params.items()}
    weights, bias = params["weights"].copy(), params["bias"].copy()
    n = len(labels)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n)
        for begin in range(0, n, batch_size):
            idx = order[begin : begin + batch_size]
            x, y = features[idx], labels[idx]
            probs = 1.0 / (1.0 + np.exp(-np.clip(x @ weights + bias[0], -500, 500)))
            losses.append(log_loss(probs, y) * len(idx))
            error = probs - y
            grad_w = x.T @ error / len(idx)
            grad_b = np.array([error.mean()])
            if proximal_mu:
                grad_w = grad_w + proximal_mu * (weights - start["weights"])
                grad_b = grad_b + proximal_mu * (bias - start["bias"])
            weights = weights - learning_rate * grad_w
            bias = bias - learning_rate * grad_b
    mean_loss = float(np.sum(losses) / (n * epochs)) if n and epochs else float("nan")
    return {"weights": weights, "bias": bias}, mean_loss


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
        loss=log_loss(probs, labels),
        accuracy=float(np.mean((probs >= 0.5) == (labels == 1))),
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
    """ROC AUC of unbinned scores (Mann-Whitney U, ties counted half)."""
    probs, labels = np.asarray(probs, float), np.asarray(labels, float)
    pos, neg = probs[labels == 1], probs[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.sort(neg)
    below = np.searchsorted(order, pos, side="left")
    ties = np.searchsorted(order, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))
