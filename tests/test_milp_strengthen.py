"""MILP strengthenings (option ``strengthen``, docs/milp.md): optimum unchanged, LP never below it."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from moebench.errors import InputError
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.exact.highs import lp_bound
from moebench.exact.strengthen import (
    DEFAULT_STRENGTHEN,
    STRENGTHENINGS,
    build_model,
    parse_strengthen,
    strengthen_model,
)
from moebench.harness import run_method
from moebench.instance import Instance, LayerSpec, build_instance

N_INST = 40
REL = 1e-6
VARIANTS = [(s,) for s in STRENGTHENINGS] + [STRENGTHENINGS]


def chain_tiny(rng: np.random.Generator, K: int, N: int, name: str) -> Instance:
    """Tiny instance; usually chain-reducible (equal sizes, server-only latencies with a common
    order, constant fallback per layer) so that ``profile`` applies, sometimes with unequal sizes,
    per-expert latencies, servers slower than the cloud and identical servers."""
    while True:
        layers = int(rng.integers(1, 3)) if K < 3 else 1
        equal = rng.random() < 0.7
        server_only = rng.random() < 0.8
        base = np.sort(rng.uniform(1, 25, N))
        if N >= 2 and rng.random() < 0.3:
            base[1] = base[0]  # two interchangeable servers
        specs = []
        for _ in range(layers):
            e = int(rng.integers(K + 1, K + 4))
            size = np.full(e, 2.5) if equal else rng.integers(1, 6, e) * 1.5
            t0 = float(rng.uniform(15, 35))
            if server_only:
                lat = np.repeat((base * rng.uniform(0.8, 1.3))[:, None], e, axis=1)
                lat = np.maximum.accumulate(lat, axis=0)  # keep the common order
            else:
                lat = rng.uniform(1, 38, (N, e))
            all_sets = np.array(list(itertools.combinations(range(e), K)))
            m = int(rng.integers(1, min(6, len(all_sets)) + 1))
            sets = all_sets[rng.choice(len(all_sets), m, replace=False)]
            specs.append(LayerSpec(size, lat, np.full(e, t0), sets, rng.integers(1, 5, m).astype(float), counts=True))
        total = sum(sp.size.sum() for sp in specs)
        cap = rng.uniform(0.1, 0.6, N) * total
        if N >= 2 and base[1] == base[0]:
            cap[1] = cap[0]
        inst = build_instance(name, K, cap, specs)
        if search_space(inst) <= 20_000:
            return inst


_DATA: list[tuple[Instance, float]] = []


def data() -> list[tuple[Instance, float]]:
    """Instances with their bruteforce optimal gain (computed once)."""
    if not _DATA:
        rng = np.random.default_rng(20261128)
        for i in range(N_INST):
            inst = chain_tiny(rng, K=1 + i % 3, N=1 + (i // 3) % 3, name=f"chain-{i}")
            lat = solve_bruteforce(inst)[1]
            _DATA.append((inst, inst.empty_latency - lat))
    return _DATA


def test_parse_strengthen() -> None:
    assert parse_strengthen(None) == DEFAULT_STRENGTHEN
    assert parse_strengthen("none") == parse_strengthen("") == ()
    assert parse_strengthen("all") == STRENGTHENINGS
    assert parse_strengthen("sym, nodup") == ("nodup", "sym")
    with pytest.raises(InputError, match="bogus"):
        parse_strengthen("nodup,bogus")


def test_strengthenings_are_exercised() -> None:
    """The test set makes every strengthening add something somewhere (else the tests below are void)."""
    seen = {"nodup": 0, "prune": 0, "sym_servers": 0, "sym_experts": 0, "profile": 0, "slots": 0}
    for inst, _ in data():
        ex = strengthen_model(inst, "cover", STRENGTHENINGS)
        seen["nodup"] += ex.info["nodup"]["rows"]
        seen["prune"] += ex.info["prune"]["levels_fixed_0"] + ex.info["prune"]["pairs_removed"]
        seen["sym_servers"] += ex.info["sym"]["server_rows"]
        seen["sym_experts"] += ex.info["sym"]["expert_rows"]
        seen["slots"] += ex.slot_size is not None
        if isinstance(ex.info["profile"], dict):
            seen["profile"] += ex.info["profile"]["envelope_rows"] + ex.info["profile"]["level_rows"]
    assert all(v > 0 for v in seen.values()), seen


def _check(backend: str, formulation: str, variants: list[tuple[str, ...]]) -> None:
    failures = []
    for inst, opt in data():
        if formulation == "k1" and inst.K != 1:
            continue
        for names in variants:
            rec = run_method(inst, backend, options={"formulation": formulation, "strengthen": ",".join(names)})
            tol = REL * max(1.0, opt)
            # CP-SAT's F-assign: rounding of about 1e-8 of the gain, "feasible" by the policy
            unproven = (backend, formulation) == ("cpsat", "assign") and "not_proven" in rec.info
            ok = (
                (rec.status == "optimal" or (unproven and rec.status == "feasible"))
                and abs(rec.gain - opt) <= tol
                and rec.bound is not None
                and opt - tol <= rec.bound <= opt + tol
                and rec.options.get("strengthen") == (",".join(names) or "none")
            )
            if not ok:
                failures.append((inst.name, names, rec.status, rec.gain, opt, rec.bound, rec.error))
    assert not failures, failures[:5]


@pytest.mark.parametrize("backend", ["milp-highs", "cpsat", "milp-pyomo"])
def test_cover_equals_bruteforce(backend: str) -> None:
    _check(backend, "cover", VARIANTS)


@pytest.mark.parametrize("formulation", ["assign", "k1"])
def test_assign_k1_equal_bruteforce(formulation: str) -> None:
    _check("milp-highs", formulation, VARIANTS)


@pytest.mark.parametrize("backend", ["cpsat", "milp-pyomo"])
def test_assign_all_other_backends(backend: str) -> None:
    _check(backend, "assign", [STRENGTHENINGS])


@pytest.mark.parametrize("formulation", ["cover", "assign"])
def test_lp_between_optimum_and_plain_lp(formulation: str) -> None:
    """optimum <= LP(strengthened) <= LP(plain) (as gain bounds): no cut removes the optimum."""
    bad = []
    for inst, opt in data():
        plain = build_model(inst, formulation)
        v0 = lp_bound(plain)
        if v0 is None:  # no rows: nothing to strengthen
            continue
        b0 = plain.gain_bound(v0)
        for names in VARIANTS:
            m = build_model(inst, formulation, names)
            v = lp_bound(m) if m.n_rows else m.objective(m.trivial_solution())
            b = m.gain_bound(v)
            if not (opt - 1e-7 * max(1.0, opt) <= b <= b0 + 1e-7 * max(1.0, b0)):
                bad.append((inst.name, names, opt, b, b0))
    assert not bad, bad[:5]


def test_profile_needs_chain_structure() -> None:
    inst = next(i for i, _ in data() if i.size.min() != i.size.max())
    ex = strengthen_model(inst, "cover", ("profile",))
    assert str(ex.info["profile"]).startswith("not applied")
    ex = strengthen_model(inst, "assign", ("profile",))
    assert "needs formulation cover" in ex.info["profile"]


def test_profile_deadline_keeps_cuts_valid() -> None:
    """An expired deadline leaves the unrefined (LP / spread) profiles: still valid, optimum kept."""
    for inst, opt in data()[:12]:
        m = build_model(inst, "cover", ("profile",), deadline=time.monotonic() - 1.0)
        if m.n_rows:
            assert m.gain_bound(lp_bound(m)) >= opt - 1e-7 * max(1.0, opt)


def test_profile_level_bound_is_valid() -> None:
    """The bound-levels bound of ``profile`` (reported when tighter than the solver's) is >= the optimum."""
    checked = 0
    for inst, opt in data():
        ex = strengthen_model(inst, "cover", ("profile",))
        if ex.gain_bound is not None:
            assert ex.gain_bound >= opt - 1e-9 * max(1.0, opt), (inst.name, ex.gain_bound, opt)
            checked += 1
    assert checked >= 10
