"""The method contract (moebench.testing): one test per built-in method x check; plus the
local-search modifier's own contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import random_instance

from moebench.algorithms.local_search import add_gains, local_search
from moebench.evaluate import effective_latency, evaluate, gain
from moebench.families import generate
from moebench.harness import run_method
from moebench.methods import get_method, registered
from moebench.testing import parametrize_with_checks

EXTRA = ["sgd-levels[dp]+ls", "greedy-marginal+ls", "greedy-ratio+single+ls", "sgd-servers[maxconv,eps=0.3]"]


def builtin_method_names() -> list[str]:
    """Every example name of the methods moebench itself registers.

    Test-only methods (tests/helpers_faulty_methods.py, which crash or hang on purpose) and
    plugins may be registered in this process too; the contract is about the built-in registry.
    """
    return [ex for reg in registered() if reg.builder.__module__.startswith("moebench.") for ex in reg.examples]


@parametrize_with_checks([*builtin_method_names(), *EXTRA])
def test_method_contract(method: str, check) -> None:
    check(method)


def test_ls_never_worse_and_reaches_a_local_optimum():
    rng = np.random.default_rng(8)
    for i in range(25):
        inst = random_instance(rng, servers=2, layers=2, experts=4, K=int(rng.integers(1, 4)), sets=5, name=f"ls{i}")
        start = rng.random((inst.N, inst.G)) < 0.15
        start &= inst.latency < inst.fallback[None, :]
        # make the random start feasible by dropping experts from overfull servers
        for n in range(inst.N):
            for g in np.flatnonzero(start[n]):
                if start[n] @ inst.size > inst.capacity[n]:
                    start[n, g] = False
        x, info = local_search(inst, start)
        assert evaluate(inst, x).feasible
        assert gain(inst, x) >= gain(inst, start) - 1e-12
        assert info["final_gain"] == pytest.approx(gain(inst, x))
        # no add and no drop-add move improves (checked by brute force over all moves)
        g0 = gain(inst, x)
        cells = list(itertools.product(range(inst.N), range(inst.G)))
        for n, g in [c for c in cells if x[c]] + [(None, None)]:
            y = x.copy()
            if n is not None:
                y[n, g] = False
            for n2, g2 in cells:
                if y[n2, g2] or (n2, g2) == (n, g):
                    continue
                z = y.copy()
                z[n2, g2] = True
                if evaluate(inst, z).feasible:
                    assert gain(inst, z) <= g0 + 1e-9, (inst.name, (n, g), (n2, g2))


def test_ls_add_gains_match_evaluator_per_layer():
    rng = np.random.default_rng(9)
    inst = random_instance(rng, servers=2, layers=3, experts=4, K=2, sets=5)
    x = rng.random((inst.N, inst.G)) < 0.3
    tau = effective_latency(inst, x)
    full = add_gains(inst, tau)
    for layer in range(inst.L):
        lo, hi = inst.expert_offset[layer], inst.expert_offset[layer + 1]
        assert np.allclose(add_gains(inst, tau, layer), full[:, lo:hi])


def test_ls_modifier_declares_base_and_respects_move_budget():
    inst = generate("zipf", {"K": 2, "layers": 2, "experts": 10, "servers": 2, "tokens": 300}, seed=1)
    m = get_method("popularity+ls")
    assert m.info.name == "popularity+ls" and m.info.deterministic and "max_moves" in m.options
    base = run_method(inst, "popularity")
    none = run_method(inst, "popularity+ls", options={"max_moves": 0})
    assert none.placement == base.placement
    full = run_method(inst, "popularity+ls")
    assert full.gain >= base.gain - 1e-12
    assert get_method("greedy-enum[2]+ls").info.guarantee == get_method("greedy-enum[2]").info.guarantee
