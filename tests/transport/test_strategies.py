"""Flower's own strategies run over DatasiteGrid; results checked against numpy."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Krum

from tests.transport.helpers import datasite, federation, make_app

N = 5
COUNTS = [10, 20, 30, 40, 100]
INITIAL = [np.zeros((2, 3)), np.ones(4)]


def _deltas(seed: int = 7) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(2, 3)), rng.normal(size=4)] for _ in range(N)]


def _nodes(n: int = N) -> dict:
    return {"min_train_nodes": n, "min_evaluate_nodes": n, "min_available_nodes": n}


def _updates(weights: list[np.ndarray], deltas) -> list[list[np.ndarray]]:
    return [[w + d for w, d in zip(weights, delta, strict=True)] for delta in deltas]


def fedavg_round(weights, deltas, counts):
    total = sum(counts)
    return [
        sum(c * (w + d[k]) for c, d in zip(counts, deltas, strict=True)) / total
        for k, w in enumerate(weights)
    ]


def _run(tmp_path: Path, strategy, num_rounds: int, deltas, **fed_kwargs):
    with federation(tmp_path, deltas, COUNTS, **fed_kwargs) as fed:
        result = strategy.start(
            fed.grid, ArrayRecord([a.copy() for a in INITIAL]), num_rounds=num_rounds
        )
        report = fed.grid.report
        fed.grid.stop_datasites()
        for email in fed.nodes:
            fed.threads[email].join(timeout=20)
        reasons = {fed.results[e].reason for e in fed.nodes}
    assert reasons == {"stop-message"}
    assert report.ok, report.summary()
    assert len(report.rounds) == 2 * num_rounds
    assert all(
        sorted(r.answered) == sorted(datasite(i + 1) for i in range(N)) for r in report.rounds
    )
    return result


def _assert_arrays(result, expected: list[np.ndarray]) -> None:
    got = result.arrays.to_numpy_ndarrays()
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_fedavg(tmp_path: Path) -> None:
    deltas = _deltas()
    result = _run(tmp_path, FedAvg(**_nodes()), 2, deltas)
    expected = fedavg_round(fedavg_round(INITIAL, deltas, COUNTS), deltas, COUNTS)
    _assert_arrays(result, expected)
    # evaluate metrics: weighted mean over datasites of the mean of the global arrays
    weights = fedavg_round(INITIAL, deltas, COUNTS)
    loss = float(np.mean(np.concatenate([w.ravel() for w in weights])))
    assert result.evaluate_metrics_clientapp[1]["loss"] == pytest.approx(loss)
    # the Context's state persists between rounds on each datasite
    assert result.train_metrics_clientapp[2]["calls"] == pytest.approx(2.0)


def test_fedprox_sends_mu_and_averages(tmp_path: Path) -> None:
    deltas = _deltas(1)
    app = make_app(expect_config={"proximal-mu": 0.5})  # the app fails if mu does not arrive
    result = _run(tmp_path, FedProx(proximal_mu=0.5, **_nodes()), 1, deltas, app=app)
    _assert_arrays(result, fedavg_round(INITIAL, deltas, COUNTS))


def test_fedadam(tmp_path: Path) -> None:
    deltas = _deltas(2)
    eta, beta_1, beta_2, tau = 0.1, 0.9, 0.99, 1e-3
    strategy = FedAdam(eta=eta, beta_1=beta_1, beta_2=beta_2, tau=tau, **_nodes())
    result = _run(tmp_path, strategy, 2, deltas)

    x = [a.copy() for a in INITIAL]
    m = [np.zeros_like(a) for a in x]
    v = [np.zeros_like(a) for a in x]
    for rnd in (1, 2):
        avg = fedavg_round(x, deltas, COUNTS)
        delta_t = [a - b for a, b in zip(avg, x, strict=True)]
        m = [beta_1 * mi + (1 - beta_1) * d for mi, d in zip(m, delta_t, strict=True)]
        v = [beta_2 * vi + (1 - beta_2) * d**2 for vi, d in zip(v, delta_t, strict=True)]
        eta_norm = eta * np.sqrt(1 - beta_2 ** (rnd + 1.0)) / (1 - beta_1 ** (rnd + 1.0))
        x = [xi + eta_norm * mi / (np.sqrt(vi) + tau) for xi, mi, vi in zip(x, m, v, strict=True)]
    _assert_arrays(result, x)


def test_fedmedian(tmp_path: Path) -> None:
    deltas = _deltas(3)
    result = _run(tmp_path, FedMedian(**_nodes()), 1, deltas)
    updates = _updates(INITIAL, deltas)
    expected = [np.median(np.stack([u[k] for u in updates]), axis=0) for k in range(2)]
    _assert_arrays(result, expected)


def test_krum_selects_the_most_central_update(tmp_path: Path) -> None:
    deltas = _deltas(4)
    deltas[4] = [d + 50.0 for d in deltas[4]]  # an outlier Krum must not pick
    result = _run(tmp_path, Krum(num_malicious_nodes=1, **_nodes()), 1, deltas)
    updates = _updates(INITIAL, deltas)
    flat = np.stack([np.concatenate([a.ravel() for a in u]) for u in updates])
    num_closest = N - 1 - 2  # n - f - 2 nearest neighbours, f = 1 malicious node
    scores = []
    for i in range(N):
        dist = sorted(float(np.sum((flat[i] - flat[j]) ** 2)) for j in range(N) if j != i)
        scores.append(sum(dist[:num_closest]))
    chosen = int(np.argmin(scores))
    assert chosen != 4
    _assert_arrays(result, updates[chosen])


def test_fedtrimmedavg(tmp_path: Path) -> None:
    deltas = _deltas(5)
    result = _run(tmp_path, FedTrimmedAvg(beta=0.2, **_nodes()), 1, deltas)
    updates = _updates(INITIAL, deltas)
    expected = []
    for k in range(2):
        stacked = np.sort(np.stack([u[k] for u in updates]), axis=0)
        expected.append(stacked[1:-1].mean(axis=0))  # drop int(0.2 * 5) = 1 at each end
    _assert_arrays(result, expected)


def test_two_simulations_side_by_side(tmp_path: Path) -> None:
    """Two grids and their nodes in threads of one process, on separate networks."""
    outcomes: dict[str, object] = {}

    def one(name: str, seed: int) -> None:
        deltas = _deltas(seed)[:3]
        try:
            with federation(tmp_path / name, deltas, COUNTS[:3]) as fed:
                res = FedAvg(**_nodes(3)).start(
                    fed.grid,
                    ArrayRecord([a.copy() for a in INITIAL]),
                    num_rounds=2,
                    train_config=ConfigRecord({"sim": name}),
                )
                outcomes[name] = (res, deltas, fed.grid.report.ok)
        except BaseException as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=one, args=(f"sim{i}", 10 + i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for name in ("sim0", "sim1"):
        outcome = outcomes[name]
        assert not isinstance(outcome, BaseException), outcome
        res, deltas, ok = outcome
        assert ok
        counts = COUNTS[:3]
        _assert_arrays(res, fedavg_round(fedavg_round(INITIAL, deltas, counts), deltas, counts))
