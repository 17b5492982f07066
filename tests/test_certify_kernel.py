"""The compiled bitset kernels of exact-sets equal the Python reference searches (same bounds,
same pruning): values, proofs and enumerated unions on random subproblems."""

from __future__ import annotations

import numpy as np
import pytest

from moebench.exact.chain import kernel as kern
from moebench.exact.chain.coverage import max_coverage, max_coverage_py
from moebench.exact.chain.unions import closed_unions, closed_unions_py

pytestmark = pytest.mark.skipif(not kern.HAVE_NUMBA, reason="numba is not installed (kernels unused)")


def _layer(rng: np.random.Generator, e: int, k: int, m: int, quantized: bool) -> tuple[np.ndarray, np.ndarray]:
    sets = np.unique(np.sort([rng.choice(e, k, replace=False) for _ in range(m)], axis=1), axis=0)
    a = np.zeros((len(sets), e), dtype=bool)
    a[np.arange(len(sets))[:, None], sets] = True
    w = rng.integers(1, 6, len(sets)).astype(float) if quantized else rng.random(len(sets))
    return a, w / w.sum()


def _covered(a: np.ndarray, p: np.ndarray, x: np.ndarray) -> float:
    return float(p[~(a & ~x[None, :]).any(axis=1)].sum())


def test_bitsets_round_trip() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((30, 64)) < 0.1
    masks = kern.set_masks(a)
    for row, m in zip(a, masks):
        assert np.array_equal(kern.mask_to_bool(m, 64), row)
        assert kern.bool_to_mask(row) == m
    idx = kern.set_index(a)
    for row, ids in zip(a, idx):
        assert sorted(ids[ids >= 0]) == list(np.flatnonzero(row))


@pytest.mark.parametrize("quantized", [False, True])
def test_cover_kernel_equals_python(quantized: bool) -> None:
    rng = np.random.default_rng(5 + quantized)
    for _ in range(25):
        e = int(rng.choice([8, 20, 64]))
        k = int(rng.integers(1, 5))
        a, p = _layer(rng, e, k, int(rng.integers(1, 30 if e == 64 else 60)), quantized)
        for b in rng.choice(np.arange(e + 1), size=4, replace=False):
            b = int(b)
            ref = max_coverage_py(a, p, b)
            got = max_coverage(a, p, b, compiled=True)
            assert got.done and ref.done
            assert got.lo == pytest.approx(ref.lo, abs=1e-12)
            assert got.witness.sum() <= b and _covered(a, p, got.witness) == pytest.approx(got.lo, abs=1e-12)
            # decision mode and cut-off searches bracket V(b) as the reference does
            v = ref.lo
            for kw in ({"threshold": v}, {"threshold": v + 0.03}, {"threshold": v / 2}, {"node_limit": 3}):
                r1 = max_coverage(a, p, b, compiled=True, **kw)
                r0 = max_coverage_py(a, p, b, **kw)
                assert r1.lo <= v + 1e-12 <= r1.hi + 2e-12
                assert r1.done == r0.done or "node_limit" in kw
                if "threshold" in kw and r0.done:
                    assert r1.hi == pytest.approx(r0.hi, abs=1e-12)


def test_cover_kernel_pauses_and_keeps_a_valid_bound() -> None:
    rng = np.random.default_rng(9)
    a, p = _layer(rng, 24, 4, 80, True)
    ref = max_coverage_py(a, p, 9)
    for limit in (1, 10, 100, 1000):
        r = max_coverage(a, p, 9, node_limit=limit, compiled=True)
        assert r.lo <= ref.lo + 1e-12 <= r.hi + 1e-12
        assert _covered(a, p, r.witness) == pytest.approx(r.lo, abs=1e-12)
        if not r.done:
            assert r.nodes == limit + 1  # the profile refinement reads "cut off" from this


@pytest.mark.parametrize("quantized", [False, True])
def test_unions_kernel_equals_python(quantized: bool) -> None:
    rng = np.random.default_rng(21 + quantized)
    for _ in range(20):
        e = int(rng.choice([8, 16, 64]))
        a, p = _layer(rng, e, int(rng.integers(1, 4)), int(rng.integers(1, 25)), quantized)
        bmax = int(rng.integers(0, min(e, 10) + 1))
        need = np.sort(rng.random(bmax + 1)) * rng.uniform(0.2, 1.2)
        if rng.random() < 0.3:
            need[0] = -np.inf
        if rng.random() < 0.3:
            need[-1] = np.inf
        ref = {tuple(np.flatnonzero(u)): (s, v) for u, s, v in closed_unions_py(a, p, need, None)}
        got = list(closed_unions(a, p, need, None, compiled=True))
        assert len(got) == len({tuple(np.flatnonzero(u)) for u, _, _ in got})  # each union once
        assert set(ref) == {tuple(np.flatnonzero(u)) for u, _, _ in got}
        for u, s, v in got:
            assert s == u.sum() and v == pytest.approx(_covered(a, p, u), abs=1e-12)
            assert ref[tuple(np.flatnonzero(u))][0] == s


def test_unions_are_closed_and_complete_by_enumeration() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        a, p = _layer(rng, 9, 2, 8, True)
        need = np.full(10, 0.3)
        want = set()
        for mask in range(1 << 9):
            x = np.array([(mask >> i) & 1 for i in range(9)], dtype=bool)
            cov = ~(a & ~x[None, :]).any(axis=1)
            union = a[cov].any(axis=0) if cov.any() else np.zeros(9, dtype=bool)
            if np.array_equal(union, x) and p[cov].sum() >= 0.3 - 1e-12:
                want.add(tuple(np.flatnonzero(x)))
        got = [tuple(np.flatnonzero(u)) for u, _, _ in closed_unions(a, p, need, None, compiled=True)]
        assert len(got) == len(set(got)) and set(got) == want


def test_greedy_kernel_equals_python() -> None:
    from moebench.exact.chain.profiles import greedy_chain

    rng = np.random.default_rng(13)
    for _ in range(20):
        e = int(rng.choice([10, 64]))
        a, p = _layer(rng, e, int(rng.integers(1, 5)), int(rng.integers(1, 40)), True)
        bmax = int(rng.integers(0, e + 1))
        lo0, _ = greedy_chain(a, p, bmax, compiled=False)
        lo1, w1 = greedy_chain(a, p, bmax, compiled=True)
        # both are lower bounds with witnesses; on these quantized weights the picks agree
        assert np.allclose(lo0, lo1, atol=1e-12)
        for b in range(bmax + 1):
            assert w1[b].sum() <= b and _covered(a, p, w1[b]) == pytest.approx(lo1[b], abs=1e-12)


def test_combine_kernel_equals_python() -> None:
    from moebench.exact.chain.profiles import _combine_py, combine

    rng = np.random.default_rng(17)
    for _ in range(30):
        nl, budget = int(rng.integers(1, 5)), int(rng.integers(0, 12))
        values = [np.maximum.accumulate(rng.integers(0, 5, int(rng.integers(1, 9))).astype(float)) for _ in range(nl)]
        f1, alloc = combine(values, budget)
        f0, choices = _combine_py(values, budget)
        assert np.allclose(f0, f1)
        assert alloc.sum() <= budget
        assert sum(v[b] for v, b in zip(values, alloc)) == pytest.approx(f1[budget])
        rest = budget
        for layer in range(nl - 1, -1, -1):  # same tie-breaking as the reference
            assert alloc[layer] == choices[layer][rest]
            rest -= alloc[layer]
