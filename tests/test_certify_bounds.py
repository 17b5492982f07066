"""Certified upper bounds never fall below a known optimum (issue 7 acceptance 2)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_certify_sets import _layer, _profile_by_enumeration, chain_instance

import moebench.exact.chain.method  # noqa: F401  (registers exact-sets / bound-levels)
from moebench.evaluate import gain
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.exact.chain.coverage import spread_bound
from moebench.exact.chain.lp import lp_profile
from moebench.exact.chain.model import chain_model
from moebench.exact.chain.profiles import LayerProfile
from moebench.exact.chain.search import exact_chains, level_bound
from moebench.harness import run_method
from moebench.tolerances import bound_below


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
            assert not bound_below(rec.bound, opt, inst.empty_latency), (inst.name, method, rec.bound, opt)
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


def _tiny_chain_model(rng: np.random.Generator, nl: int, e: int, nlev: int):
    from moebench.exact.chain.model import ChainModel

    members, probs = [], []
    for _ in range(nl):
        sets = {tuple(sorted(rng.choice(e, int(rng.integers(1, 4)), replace=False))) for _ in range(6)}
        a = np.zeros((len(sets), e), dtype=bool)
        for i, s in enumerate(sorted(sets)):
            a[i, list(s)] = True
        w = rng.integers(1, 5, len(sets)).astype(float)
        members.append(a)
        probs.append(w / w.sum())
    slots = rng.integers(1, 3, nlev)
    weights = rng.integers(1, 4, (1, nlev)).astype(float).repeat(nl, axis=0)
    return ChainModel(np.arange(nlev), slots, np.cumsum(slots), weights, members, probs, np.arange(nlev))


def _nested_chains(e: int, nlev: int):
    """Every nested chain C_0 <= ... <= C_{nlev-1} over e experts, as the first level of each expert
    (nlev = never)."""
    return itertools.product(range(nlev + 1), repeat=e)


def test_lagrangian_dual_of_budget_rows_equals_chain_lp() -> None:
    """Geoffrion: the relaxed problem (per-layer nested chains, supermodular objective) has the
    integrality property, so min over lambda of the Lagrangian equals the chain LP; and both are
    upper bounds on R* (the MILP)."""
    import highspy

    from moebench.exact.chain.lp import chain_lp, quiet_highs

    rng = np.random.default_rng(4)
    for _ in range(6):
        nl, e, nlev = 2, 4, int(rng.integers(1, 4))
        model = _tiny_chain_model(rng, nl, e, nlev)
        z_lp = chain_lp(model)
        z_ip = chain_lp(model, integral=True)
        # z_LD = min_{lambda >= 0, theta} sum_j lambda_j P_j + sum_l theta_l  s.t. for every layer l
        # and nested chain C: theta_l >= sum_j w_lj f_l(C_j) - sum_j lambda_j |C_j|   (an exact LP)
        h = quiet_highs()
        nvar = nlev + nl
        h.addVars(nvar, np.zeros(nvar), np.full(nvar, highspy.kHighsInf))
        cost = np.concatenate([model.prefix.astype(float), np.ones(nl)])
        h.changeColsCost(nvar, np.arange(nvar, dtype=np.int32), cost)
        for layer in range(nl):
            a, p = model.members[layer], model.probs[layer]
            for first in _nested_chains(e, nlev):
                first = np.array(first)
                sizes = np.array([(first <= j).sum() for j in range(nlev)], dtype=float)
                gain = sum(
                    model.weights[layer, j] * p[~(a & ~(first <= j)[None, :]).any(axis=1)].sum() for j in range(nlev)
                )
                # theta_l + sum_j lambda_j |C_j| >= gain
                idx = np.array([*range(nlev), nlev + layer], dtype=np.int32)
                h.addRow(float(gain), highspy.kHighsInf, idx.size, idx, np.concatenate([sizes, [1.0]]))
        h.run()
        z_ld = h.getInfo().objective_function_value
        assert z_ld == pytest.approx(z_lp, abs=1e-7)
        # and the MILP of the chain model is the optimum exact-sets finds
        _, value, _, proven, _ = exact_chains(model)
        assert proven and z_ip == pytest.approx(value, abs=1e-7) and z_ip <= z_lp + 1e-7
