"""exact-sets: the chain reduction, the per-layer branch and bound, the DP, and the exact method
against brute force (differential tests; issue 7 acceptance 1)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import moebench.exact.chain.method  # noqa: F401  (registers exact-sets / bound-levels)
from moebench.errors import NotApplicableError
from moebench.evaluate import gain
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.exact.chain.coverage import max_coverage, quantum
from moebench.exact.chain.model import chain_model, chain_value, placement_chains
from moebench.exact.chain.profiles import LayerProfile, combine
from moebench.exact.chain.unions import suffix_tables
from moebench.harness import run_method
from moebench.instance import LayerSpec, build_instance
from moebench.tolerances import OPTIMAL_RTOL, bound_below, proven


def _layer(rng: np.random.Generator, e: int, k: int, m: int, quantized: bool) -> tuple[np.ndarray, np.ndarray]:
    sets = np.unique(np.sort([rng.choice(e, k, replace=False) for _ in range(m)], axis=1), axis=0)
    a = np.zeros((len(sets), e), dtype=bool)
    a[np.arange(len(sets))[:, None], sets] = True
    w = rng.integers(1, 4, len(sets)).astype(float) if quantized else rng.random(len(sets))
    return a, w / w.sum()


def _profile_by_enumeration(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    e = a.shape[1]
    v = np.zeros(e + 1)
    for mask in range(1 << e):
        c = np.array([(mask >> i) & 1 for i in range(e)], dtype=bool)
        v[c.sum()] = max(v[c.sum()], p[~(a & ~c[None, :]).any(axis=1)].sum())
    return np.maximum.accumulate(v)


@pytest.mark.parametrize("quantized", [False, True])
def test_max_coverage_equals_enumeration(quantized: bool) -> None:
    rng = np.random.default_rng(11 + quantized)
    for _ in range(40):
        e, k = int(rng.integers(3, 9)), int(rng.integers(1, 4))
        a, p = _layer(rng, e, min(k, e), int(rng.integers(1, 14)), quantized)
        v = _profile_by_enumeration(a, p)
        for b in range(e + 1):
            res = max_coverage(a, p, b)
            assert res.done and res.lo == pytest.approx(v[b], abs=1e-12)
            assert res.witness.sum() <= b
            assert p[~(a & ~res.witness[None, :]).any(axis=1)].sum() == pytest.approx(res.lo, abs=1e-12)
            # cut-off and decision searches still bracket V(b)
            for kwargs in ({"node_limit": 2}, {"threshold": v[b]}, {"threshold": v[b] + 0.05}, {"threshold": v[b] / 2}):
                r = max_coverage(a, p, b, **kwargs)
                assert r.lo <= v[b] + 1e-12 <= r.hi + 2e-12


def test_quantum_detects_token_counts() -> None:
    assert quantum(np.array([1, 3, 2]) / 6) == pytest.approx(1 / 6)
    assert quantum(np.array([0.3, 0.7 / np.pi])) == 0.0


def test_layer_profile_brackets_and_refines() -> None:
    rng = np.random.default_rng(3)
    for _ in range(15):
        a, p = _layer(rng, 7, 3, 10, True)
        v = _profile_by_enumeration(a, p)
        prof = LayerProfile(a, p, 7, use_lp=True)
        v = v[: prof.bmax + 1]
        assert np.all(prof.lo <= v + 1e-12) and np.all(prof.hi >= v - 1e-9)
        for b in range(prof.bmax + 1):
            prof.refine(b, 10**6)
        assert np.allclose(prof.lo, v) and np.allclose(prof.hi, v, atol=1e-9)


def test_combine_equals_enumeration() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        nl, bmax, budget = int(rng.integers(1, 4)), int(rng.integers(0, 5)), int(rng.integers(0, 9))
        vals = [np.maximum.accumulate(rng.random(bmax + 1)) for _ in range(nl)]
        best, alloc = combine(vals, budget)
        brute = max(
            sum(v[b] for v, b in zip(vals, bs))
            for bs in itertools.product(range(bmax + 1), repeat=nl)
            if sum(bs) <= budget
        )
        assert best[budget] == pytest.approx(brute)
        assert alloc.sum() <= budget and sum(v[b] for v, b in zip(vals, alloc)) == pytest.approx(brute)
        suffix = suffix_tables(vals, budget)
        assert suffix[0][budget] == pytest.approx(brute)


# ---- instances ---------------------------------------------------------------------------------
def chain_instance(rng: np.random.Generator, name: str = "c", *, tiny: bool = True):
    """Random chain-reducible instance: equal sizes, server-only latencies scaled per layer
    (heterogeneous across layers, same server order), ties and servers slower than the cloud."""
    n = int(rng.integers(1, 4))
    nl = int(rng.integers(1, 3))
    k = int(rng.integers(1, 4))
    base = rng.choice([1.0, 2.0, 3.0, 3.0, 5.0, 12.0], n)
    specs = []
    for layer in range(nl):
        e = int(rng.integers(k, max(k + 1, (9 - 3 * nl if n > 1 else 7) if tiny else 10)))
        m = int(rng.integers(1, 12))
        sets = np.array([rng.choice(e, k, replace=False) for _ in range(m)])
        scale = 1.0 + 0.5 * layer
        specs.append(
            LayerSpec(
                size=np.full(e, 2.0),
                latency=np.repeat((base * scale)[:, None], e, axis=1),
                fallback=np.full(e, 10.0 + layer),
                sets=sets,
                weights=rng.integers(1, 5, m).astype(float),
                counts=True,
            )
        )
    cap = 2.0 * rng.integers(0, 5, n) + rng.choice([0.0, 0.5], n)  # half slots are floored away
    return build_instance(name, k, cap, specs)


def test_layer_cake_identity_on_placements() -> None:
    """Gain of any placement (duplicates included) = layer-cake value of its nested chains."""
    rng = np.random.default_rng(8)
    for i in range(60):
        inst = chain_instance(rng, f"lc{i}")
        model = chain_model(inst)
        x = rng.random((inst.N, inst.G)) < 0.4
        assert chain_value(model, placement_chains(inst, model, x)) == pytest.approx(gain(inst, x), abs=1e-12)


def test_exact_sets_equals_bruteforce() -> None:
    rng = np.random.default_rng(2026)
    checked = 0
    while checked < 120:
        inst = chain_instance(rng, f"bf{checked}")
        if search_space(inst) > 200_000:
            continue
        x, _ = solve_bruteforce(inst)
        opt = gain(inst, x)
        rec = run_method(inst, "exact-sets", time_limit=60, isolate=False)
        assert rec.status == "optimal", (inst.name, rec.error)
        assert rec.gain == pytest.approx(opt, abs=1e-9), inst.name
        # the one tolerance policy: a safe bound, optimal within OPTIMAL_RTOL of it
        assert not bound_below(rec.bound, opt, inst.empty_latency), (inst.name, rec.bound, opt)
        assert proven(rec.gain, rec.bound, inst.empty_latency) and rec.tolerance == OPTIMAL_RTOL
        checked += 1


def test_not_applicable_outside_the_reduction() -> None:
    rng = np.random.default_rng(1)
    inst = chain_instance(rng)
    from moebench.instance import replace_arrays

    size = inst.size.copy()
    size[0] += 1
    lat = inst.latency.copy()
    lat[0, 0] += 0.25
    fb = inst.fallback.copy()
    fb[0] += 1
    for bad in (replace_arrays(inst, size=size), replace_arrays(inst, latency=lat), replace_arrays(inst, fallback=fb)):
        with pytest.raises(NotApplicableError):
            chain_model(bad)
        if not np.all(bad.size == bad.size[0]):
            continue
        assert run_method(bad, "exact-sets", isolate=False).status == "not-applicable"
    # no common fastest-first order: layer 0 prefers server 0, layer 1 server 1
    specs = [
        LayerSpec(np.ones(3), np.array([[1.0] * 3, [2.0] * 3]), np.full(3, 9.0), np.array([[0, 1]]), np.ones(1)),
        LayerSpec(np.ones(3), np.array([[2.0] * 3, [1.0] * 3]), np.full(3, 9.0), np.array([[0, 1]]), np.ones(1)),
    ]
    with pytest.raises(NotApplicableError):
        chain_model(build_instance("cross", 2, [2.0, 2.0], specs))


def test_agrees_with_milp_where_it_proves_optimality() -> None:
    """Acceptance 1: where milp-highs proves optimality, exact-sets finds the same gain."""
    from moebench.methods import registered

    if "milp-highs" not in {r.base for r in registered()}:
        pytest.skip("milp-highs is not registered")
    rng = np.random.default_rng(77)
    compared = 0
    for i in range(12):
        inst = chain_instance(rng, f"milp{i}", tiny=False)
        milp = run_method(inst, "milp-highs", time_limit=30, isolate=False)
        if milp.status != "optimal":
            continue
        ours = run_method(inst, "exact-sets", time_limit=30, isolate=False)
        assert ours.status == "optimal"
        assert ours.gain == pytest.approx(milp.gain, abs=1e-6 * max(1.0, milp.gain))
        compared += 1
    assert compared >= 5


def planted_instance(rng: np.random.Generator):
    """One layer where the best 2-expert set (a heavy pair) lies outside the best 4-expert set
    (a dense block): the per-level optima do not nest and the top-down enumeration must work."""
    e = int(rng.integers(6, 8))
    block = [[2, 3], [4, 5], [2, 4], [3, 5]][: int(rng.integers(2, 5))]
    noise = [list(rng.choice(e, 2, replace=False)) for _ in range(int(rng.integers(0, 3)))]
    sets = np.array([[0, 1], *block, *noise])
    w = np.concatenate([[rng.integers(3, 6)], rng.integers(1, 4, len(sets) - 1)]).astype(float)
    lat = np.array([1.0, 2.0, float(rng.choice([3.0, 4.0]))])
    cap = np.array([2.0, 2.0, float(rng.integers(0, 3))])
    spec = LayerSpec(np.ones(e), np.repeat(lat[:, None], e, axis=1), np.full(e, 10.0), sets, w, counts=True)
    return build_instance("planted", 2, cap, [spec])


def test_exact_sets_when_levels_do_not_nest() -> None:
    from moebench.exact.chain.search import exact_chains

    rng = np.random.default_rng(0)
    needed = 0
    for _ in range(100):
        inst = planted_instance(rng)
        x, _ = solve_bruteforce(inst)
        opt = gain(inst, x)
        _, _, _, proven_without, _ = exact_chains(chain_model(inst), enumerate_levels=False)
        needed += not proven_without
        rec = run_method(inst, "exact-sets", time_limit=60, isolate=False)
        assert rec.status == "optimal" and rec.gain == pytest.approx(opt, abs=1e-9)
    assert needed >= 5  # the enumeration over top-level solutions was exercised


def test_python_fallback_equals_bruteforce(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without numba every search runs in the Python reference: still exact."""
    from moebench.exact.chain import kernel as sets_kernel

    monkeypatch.setattr(sets_kernel, "HAVE_NUMBA", False)
    rng = np.random.default_rng(77)
    checked = 0
    while checked < 40:
        inst = chain_instance(rng, f"py{checked}")
        if search_space(inst) > 200_000:
            continue
        x, _ = solve_bruteforce(inst)
        rec = run_method(inst, "exact-sets", time_limit=60, isolate=False)
        assert rec.status == "optimal" and rec.gain == pytest.approx(gain(inst, x), abs=1e-9), inst.name
        checked += 1


def test_nested_enumeration_compiled_equals_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Instances where the bound and the heuristic do not meet (the level enumeration with
    subproblem targets and the profile cache runs): same optimum with and without the kernels."""
    from moebench.exact.chain import kernel as sets_kernel
    from moebench.exact.chain import search as sets

    calls = []
    real = sets.level_solutions

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sets, "level_solutions", counted)
    rng = np.random.default_rng(31)
    for _ in range(40):
        model = chain_model(planted_instance(rng))
        _, v1, u1, p1, _ = sets.exact_chains(model)
        with monkeypatch.context() as m:
            m.setattr(sets_kernel, "HAVE_NUMBA", False)
            _, v0, _, p0, _ = sets.exact_chains(model)
        assert p1 and p0 and v1 == pytest.approx(v0, abs=1e-9) and u1 >= v1 - 1e-9
    assert len(calls) >= 4  # the enumeration path was exercised


def _planted_layers(rng: np.random.Generator, nl: int):
    """``nl`` small layers whose per-level optima need not nest (a heavy pair against a dense
    block, as in :func:`planted_instance`), on two shared servers."""
    specs = []
    for _ in range(nl):
        e = 4
        sets = np.array([[0, 1], [2, 3], [1, 2], [0, 3]][: int(rng.integers(2, 5))])
        w = np.concatenate([[rng.integers(3, 6)], rng.integers(1, 4, len(sets) - 1)]).astype(float)
        lat = np.array([1.0, float(rng.choice([2.0, 3.0]))])
        specs.append(LayerSpec(np.ones(e), np.repeat(lat[:, None], e, axis=1), np.full(e, 10.0), sets, w, counts=True))
    cap = np.array([float(rng.integers(1, 4)), float(rng.integers(1, 4))])
    return build_instance("planted-layers", 2, cap, specs)


def test_completing_the_tops_keeps_the_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact completion of the heuristic tops (``COMPLETE_TOPS``) changes only the route: the
    same proven optimum as without it and as brute force, with a bound at or above it."""
    from moebench.exact.chain import search

    rng = np.random.default_rng(7)
    needed = checked = 0
    while checked < 30:
        inst = _planted_layers(rng, 2)
        if search_space(inst) > 70_000:
            continue
        x, _ = solve_bruteforce(inst)
        opt = gain(inst, x)
        model = chain_model(inst)
        needed += not search.exact_chains(model, enumerate_levels=False)[3]
        results = {}
        for flag in (True, False):
            monkeypatch.setattr(search, "COMPLETE_TOPS", flag)
            _, value, upper, done, _ = search.exact_chains(model)
            assert done and value == pytest.approx(opt, abs=1e-9) and upper >= opt - 1e-9, (checked, flag)
            results[flag] = value
        assert results[True] == pytest.approx(results[False], abs=1e-9)
        checked += 1
    assert needed >= 5  # the completion ran (bound and nested completions did not meet)
