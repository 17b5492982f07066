"""A single-server, single-layer K = 1 instance is a 0/1 knapsack: exact back ends vs a textbook DP.

Construction: item e has integer weight w_e (the expert size in MB) and profit v_e. Each
expert is its own activation set with probability pi_e; with T[e] = 1 and
T0[e] = 1 + v_e / (pi_e c), caching e gains exactly pi_e (T0_e - T_e) = v_e / c, so the optimal
gain is (knapsack optimum) / c.
"""

from __future__ import annotations

import numpy as np
import pytest

from moebench.harness import run_method
from moebench.instance import Instance, LayerSpec, build_instance

N_KNAPSACKS = 50


def knapsack_dp(weights: np.ndarray, profits: np.ndarray, capacity: int) -> float:
    """Textbook 0/1 knapsack DP over capacities (one numpy vector update per item)."""
    best = np.zeros(capacity + 1)
    for w, v in zip(weights.tolist(), profits.tolist()):
        if w <= capacity:
            best[w:] = np.maximum(best[w:], best[:-w] + v) if w > 0 else best + v
    return float(best[-1])


def knapsack(i: int) -> tuple[Instance, float, float]:
    """Knapsack number ``i``: uncorrelated, weakly or strongly correlated (Pisinger's classes)."""
    rng = np.random.default_rng(1000 + i)
    n, r = int(rng.integers(12, 30)), 100
    w = rng.integers(1, r + 1, n)
    kind = i % 3
    if kind == 0:
        v = rng.integers(1, r + 1, n).astype(float)
    elif kind == 1:
        v = np.maximum(1, w + rng.integers(-r // 10, r // 10 + 1, n)).astype(float)
    else:  # strongly correlated: the hard class for branch and bound
        v = (w + r // 10).astype(float)
    cap = int(w.sum() * rng.uniform(0.2, 0.6))
    pi = rng.random(n) + 0.1
    pi /= pi.sum()
    c = float(v.sum())
    t0 = 1.0 + v / (pi * c)
    spec = LayerSpec(w.astype(float), np.ones((1, n)), t0, np.arange(n)[:, None], pi)
    inst = build_instance(f"knapsack-{i}", 1, [float(cap)], [spec])
    return inst, knapsack_dp(w, v, cap) / c, c


@pytest.mark.parametrize("backend", ["milp-highs", "cpsat", "milp-pyomo"])
@pytest.mark.parametrize("formulation", ["k1", "cover"])
def test_knapsack_matches_dp(backend: str, formulation: str) -> None:
    failures = []
    for i in range(N_KNAPSACKS):
        inst, opt_gain, _ = knapsack(i)
        rec = run_method(inst, backend, options={"formulation": formulation})
        if rec.status != "optimal" or abs(rec.gain - opt_gain) > 1e-6 * max(opt_gain, 1e-9):
            failures.append((i, rec.status, rec.gain, opt_gain, rec.error))
    assert not failures, failures[:5]


def test_dp_itself() -> None:
    # classic example: weights 1..4, profits, capacity 5 -> best is items {2, 3} (profit 7)
    assert knapsack_dp(np.array([1, 2, 3, 4]), np.array([1.0, 3.0, 4.0, 5.0]), 5) == 7.0
    assert knapsack_dp(np.array([6]), np.array([9.0]), 5) == 0.0
