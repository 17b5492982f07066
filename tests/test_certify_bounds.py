"""Certified upper bounds never fall below a known optimum (issue 7 acceptance 2)."""

from __future__ import annotations

import numpy as np
import pytest
from test_certify_sets import _layer, _profile_by_enumeration, chain_instance

import moebench.exact.certify  # noqa: F401  (registers exact-sets / bound-levels)
from moebench.evaluate import gain
from moebench.exact.bounds import level_bound, lp_profile
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.exact.sets import LayerProfile, chain_model, exact_chains, spread_bound
from moebench.harness import run_method


def test_lp_and_spread_bounds_dominate_the_profile() -> None:
    rng = np.random.default_rng(4)
    for _ in range(40):
        e = int(rng.integers(3, 9))
        a, p = _layer(rng, e, int(rng.integers(1, min(4, e) + 1)), int(rng.integers(1, 14)), bool(rng.integers(2)))
        v = _profile_by_enumeration(a, p)
        lp = lp_profile(a, p, e)
        assert lp is not None and np.all(lp >= v - 1e-12)
        cnt = a.sum(axis=1)
        for b in range(1, e + 1):
            alive = np.flatnonzero(cnt <= b)
            ub, _ = spread_bound(a.astype(float), p, alive, cnt[alive], np.zeros(e, dtype=bool), b)
            assert ub >= v[b] - 1e-12


def test_bounds_on_known_optima() -> None:
    """>= 100 instances with a brute-force optimum: every bound (exact-sets, bound-levels with a
    normal and with a starved node budget, the profile bound without the LP) is >= the optimum."""
    rng = np.random.default_rng(99)
    checked = 0
    while checked < 110:
        inst = chain_instance(rng, f"ub{checked}", tiny=True)
        if search_space(inst) > 200_000:
            continue
        x, _ = solve_bruteforce(inst)
        opt = gain(inst, x)
        for method in ("bound-levels", "bound-levels[nodes=1]"):
            rec = run_method(inst, method, isolate=False)
            assert rec.status in ("optimal", "feasible"), rec.error
            assert rec.bound >= opt - 1e-9, (inst.name, method, rec.bound, opt)
            assert rec.gain <= opt + 1e-9
        model = chain_model(inst)
        _, _, upper, _, _ = exact_chains(model, node_limit=1, grow=False, enumerate_levels=False, lp=False)
        assert upper >= opt - 1e-9
        assert level_bound(inst, node_limit=1) >= opt - 1e-9
        checked += 1


def test_starved_profiles_stay_valid() -> None:
    """Profiles refined with one node per search keep lo <= V <= hi."""
    rng = np.random.default_rng(12)
    for _ in range(20):
        a, p = _layer(rng, 8, 3, 12, True)
        v = _profile_by_enumeration(a, p)
        prof = LayerProfile(a, p, 8)
        v = v[: prof.bmax + 1]  # the profile stops at the number of active experts
        for b in rng.permutation(prof.bmax + 1):
            prof.refine(int(b), 1, threshold=float(v[b]) + 0.01 * rng.integers(-2, 3))
            assert np.all(prof.lo <= v + 1e-12) and np.all(prof.hi >= v - 1e-9)


@pytest.mark.parametrize("nodes", [1, 50])
def test_bound_levels_on_larger_instances_is_consistent(nodes: int) -> None:
    """On instances beyond brute force the bound still covers the exact optimum of exact-sets."""
    rng = np.random.default_rng(nodes)
    for i in range(5):
        inst = chain_instance(rng, f"lg{i}", tiny=False)
        ex = run_method(inst, "exact-sets", time_limit=30, isolate=False)
        assert ex.status == "optimal"
        bd = run_method(inst, f"bound-levels[nodes={nodes}]", isolate=False)
        assert bd.bound >= ex.gain - 1e-9 and bd.gain <= ex.gain + 1e-9
