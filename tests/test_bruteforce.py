"""``bruteforce`` against an exhaustive check over *all* placements (duplicates included)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import random_instance

from moebench.evaluate import evaluate, latency_many
from moebench.exact.bruteforce import search_space
from moebench.harness import run_method


def exhaustive_best(inst) -> float:
    """Best latency over every subset of (server, expert) pairs that fits: 2^(N*G) placements."""
    cells = inst.N * inst.G
    codes = np.arange(2**cells, dtype=np.int64)
    xs = ((codes[:, None] >> np.arange(cells)[None, :]) & 1).astype(bool).reshape(-1, inst.N, inst.G)
    load = xs.astype(float) @ inst.size
    ok = np.all(load <= inst.capacity[None, :] + 1e-9, axis=1)
    return float(latency_many(inst, xs[ok]).min())


@pytest.mark.parametrize("seed", range(60))
def test_bruteforce_equals_exhaustive(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3))
    inst = random_instance(
        rng,
        servers=n,
        layers=int(rng.integers(1, 3)),
        experts=int(rng.integers(2, 6 - 2 * (n - 1) + 1)),
        K=int(rng.integers(1, 3)),
        sets=5,
    )
    rec = run_method(inst, "bruteforce")
    assert rec.status == "optimal"
    assert rec.latency == pytest.approx(exhaustive_best(inst), rel=1e-12, abs=1e-12)
    assert rec.bound == pytest.approx(rec.gain, rel=1e-12)
    assert rec.gap == 0.0


def test_bruteforce_refuses_large_instances():
    rng = np.random.default_rng(0)
    inst = random_instance(rng, servers=3, layers=4, experts=8, K=2, sets=20)
    assert search_space(inst) > 3_000_000
    rec = run_method(inst, "bruteforce")
    assert rec.status == "not-applicable"
    assert "exceed the limit" in rec.error


def test_bruteforce_never_worse_than_any_baseline():
    for seed in range(10):
        inst = random_instance(np.random.default_rng(100 + seed), servers=2, layers=2, experts=4, K=2, sets=4)
        best = run_method(inst, "bruteforce").latency
        for m in ("popularity", "popularity-indep", "layer-uniform", "whole-layer", "random"):
            assert run_method(inst, m).latency >= best - 1e-12


def test_search_space_counts_only_useful_choices():
    inst = random_instance(np.random.default_rng(3), servers=2, layers=1, experts=3, K=1, sets=3)
    useful = (inst.latency < inst.fallback) & (inst.size[None] <= inst.capacity[:, None])
    expected = 1
    for g in range(inst.G):
        if inst.active[g] and useful[:, g].any():
            expected *= 1 + int(useful[:, g].sum())
    assert search_space(inst) == expected
    assert evaluate(inst, np.zeros((inst.N, inst.G), bool)).gain == 0.0
    assert list(itertools.islice(range(expected), 1)) == [0]


def test_bruteforce_refusal_of_astronomic_search_spaces_is_a_status_not_a_crash():
    # 10^6000+ assignments: the count itself is too long for int -> str (Python's 4300-digit limit)
    from moebench.families import generate

    inst = generate("zipf", {"K": 1, "layers": 48, "experts": 128, "servers": 10, "tokens": 200}, 0)
    rec = run_method(inst, "bruteforce")
    assert rec.status == "not-applicable"
    assert "about 10^" in rec.error and "exceed the limit" in rec.error
