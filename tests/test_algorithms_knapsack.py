"""Subproblem solvers: profiles, exact dp and max-convolution against independent brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from moebench.algorithms.knapsack import dp_combine, maxconv_combine, sparsify
from moebench.algorithms.profiles import chain_profile, exact_profile, make_layer_task


def random_subproblem(rng: np.random.Generator, layers: int, experts: int, k: int, sets: int, integer: bool = True):
    """Random multiple-choice-knapsack subproblem in the shape SGD produces.

    Returns per-layer (set ids, probs, candidate ids), the global cur/new latencies and sizes.
    """
    g = layers * experts
    cur = rng.choice([8.0, 5.0, 4.0], size=g, p=[0.6, 0.2, 0.2]) + rng.uniform(0, 0.5, g) * (rng.random() < 0.5)
    new = cur - rng.uniform(0.5, 4.0, g)
    size = rng.integers(1, 5, g).astype(float) if integer else rng.uniform(0.5, 4.0, g)
    out = []
    for layer in range(layers):
        lo = layer * experts
        combos = list(itertools.combinations(range(experts), k))
        pick = rng.choice(len(combos), size=min(sets, len(combos)), replace=False)
        s = np.array([combos[i] for i in pick]) + lo
        p = rng.random(len(s)) + 0.05
        p /= p.sum()
        cand = lo + np.flatnonzero(rng.random(experts) < 0.8)
        out.append((s, p, cand))
    return out, cur, new, size


def direct_gain(sets, probs, cur, new, promoted) -> float:
    """g_l(A) straight from the definition, one set at a time."""
    total = 0.0
    for s, p in zip(sets, probs):
        before = max(cur[e] for e in s)
        after = max(min(new[e], cur[e]) if e in promoted else cur[e] for e in s)
        total += p * (before - after)
    return total


def brute_force(layers, cur, new, size, budget) -> float:
    """Best sum of layer gains over all combinations of candidate subsets within the budget."""
    options = []
    for s, p, cand in layers:
        opts = []
        for r in range(len(cand) + 1):
            for a in itertools.combinations(cand.tolist(), r):
                opts.append((sum(size[e] for e in a), direct_gain(s, p, cur, new, set(a))))
        options.append(opts)
    best = 0.0
    for combo in itertools.product(*options):
        w = sum(c[0] for c in combo)
        if w <= budget + 1e-9:
            best = max(best, sum(c[1] for c in combo))
    return best


def profiles_of(layers, cur, new, size, budget=None, chain=False):
    tasks = [make_layer_task(s, p, cur, new, cand, size) for s, p, cand in layers]
    if chain:
        return [chain_profile(t, budget) for t in tasks]
    return [exact_profile(t, budget) for t in tasks]


def test_exact_profile_matches_direct_enumeration():
    rng = np.random.default_rng(1)
    for trial in range(40):
        (layer,), cur, new, size = random_subproblem(rng, 1, 6, int(rng.integers(1, 4)), 8)
        s, p, cand = layer
        prof = exact_profile(make_layer_task(s, p, cur, new, cand, size))
        # every breakpoint's promoted set has exactly the stated weight and value
        for k in range(len(prof)):
            a = prof.members(k)
            assert prof.weights[k] == pytest.approx(size[a].sum())
            assert prof.values[k] == pytest.approx(direct_gain(s, p, cur, new, set(a.tolist())), abs=1e-12)
        # and V(b) is the best over all subsets for every budget
        for b in range(0, 14):
            best = max(
                direct_gain(s, p, cur, new, set(a))
                for r in range(len(cand) + 1)
                for a in itertools.combinations(cand.tolist(), r)
                if sum(size[e] for e in a) <= b
            )
            got = prof.values[prof.weights <= b + 1e-9].max()
            assert got == pytest.approx(best, abs=1e-12), (trial, b)


def test_chain_profile_values_are_true_gains():
    rng = np.random.default_rng(2)
    for _ in range(40):
        (layer,), cur, new, size = random_subproblem(rng, 1, 8, int(rng.integers(1, 5)), 20)
        s, p, cand = layer
        prof = chain_profile(make_layer_task(s, p, cur, new, cand, size))
        assert prof.weights[0] == 0 and prof.values[0] == 0
        assert np.all(np.diff(prof.weights) > 0) and np.all(np.diff(prof.values) > 0)
        for k in range(len(prof)):
            a = prof.members(k)
            assert prof.weights[k] == pytest.approx(size[a].sum())
            assert prof.values[k] == pytest.approx(direct_gain(s, p, cur, new, set(a.tolist())), abs=1e-12)
        # chain members are nested prefixes
        for k in range(1, len(prof)):
            assert set(prof.members(k - 1).tolist()) <= set(prof.members(k).tolist())


@pytest.mark.parametrize("seed", range(60))
def test_dp_equals_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    n_layers = int(rng.integers(1, 4))
    k = int(rng.integers(1, 4))
    layers, cur, new, size = random_subproblem(rng, n_layers, 4, k, 5)
    budget = int(rng.integers(0, 14))
    profiles = profiles_of(layers, cur, new, size)
    choice, value = dp_combine(profiles, budget, 1.0)
    assert value == pytest.approx(brute_force(layers, cur, new, size, budget), abs=1e-12)
    # the returned choice is feasible and worth what it claims
    total_w = sum(p.weights[c] for p, c in zip(profiles, choice))
    assert total_w <= budget + 1e-9
    got = sum(
        direct_gain(s, pr, cur, new, set(p.members(c).tolist())) for (s, pr, _), p, c in zip(layers, profiles, choice)
    )
    assert got == pytest.approx(value, abs=1e-12)


def test_dp_with_equal_sizes_in_whole_experts():
    rng = np.random.default_rng(7)
    for _ in range(20):
        layers, cur, new, size = random_subproblem(rng, 3, 4, 2, 5)
        size[:] = 17.3
        profiles = profiles_of(layers, cur, new, size)
        for n_experts in range(0, 8):
            _, value = dp_combine(profiles, n_experts, 17.3)
            assert value == pytest.approx(brute_force(layers, cur, new, size, 17.3 * n_experts), abs=1e-12)


def test_sparsify_keeps_a_close_lighter_point():
    rng = np.random.default_rng(3)
    for _ in range(50):
        w = np.concatenate([[0], np.cumsum(rng.uniform(0.1, 2, 200))])
        v = np.concatenate([[0], np.cumsum(rng.exponential(1, 200))])
        eps, floor = 0.05, float(v[5])
        keep = sparsify(w, v, eps, floor)
        assert keep[0] == 0
        for i in range(len(w)):
            ok = keep[w[keep] <= w[i] + 1e-12]
            best = v[ok].max()
            if v[i] >= floor:
                assert best >= v[i] / (1 + eps) - 1e-12
            else:
                assert best >= 0


def test_maxconv_within_eps_of_dp_on_200_subproblems():
    rng = np.random.default_rng(11)
    worst = {0.05: 1.0, 0.1: 1.0, 0.3: 1.0}
    for trial in range(200):
        n_layers = int(rng.integers(1, 9))
        layers, cur, new, size = random_subproblem(rng, n_layers, 6, int(rng.integers(1, 4)), 10)
        budget = int(rng.integers(1, 6 * n_layers * 2))
        chain = trial % 2 == 1  # both profile kinds
        profiles = profiles_of(layers, cur, new, size, chain=chain)
        _, exact = dp_combine(profiles, budget, 1.0)
        for eps in worst:
            choice, value = maxconv_combine(profiles, float(budget), eps)
            assert sum(p.weights[c] for p, c in zip(profiles, choice)) <= budget + 1e-9
            assert value == pytest.approx(sum(p.values[c] for p, c in zip(profiles, choice)))
            assert value >= (1 - eps) * exact - 1e-12, (trial, eps, value, exact)
            if exact > 0:
                worst[eps] = min(worst[eps], value / exact)
    print("maxconv / dp worst ratios:", worst)


def test_maxconv_handles_real_valued_sizes():
    rng = np.random.default_rng(5)
    for _ in range(30):
        layers, cur, new, size = random_subproblem(rng, 5, 5, 2, 8, integer=False)
        budget = float(rng.uniform(1, 15))
        profiles = profiles_of(layers, cur, new, size)
        # a fine dp resolution is a lower bound on the real optimum (sizes round up)
        _, fine = dp_combine(profiles, int(budget / 0.001), 0.001)
        choice, value = maxconv_combine(profiles, budget, 0.1)
        assert sum(p.weights[c] for p, c in zip(profiles, choice)) <= budget + 1e-9
        assert value >= 0.9 * fine - 1e-12
