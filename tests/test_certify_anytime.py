"""Issue 13: exact-sets and bound-levels always return a placement and a valid bound, at every
capacity, also when they are stopped at once (time limit 0), and every incumbent they stream for
the harness (kept if the run is killed) is feasible with a valid bound."""

from __future__ import annotations

import numpy as np
import pytest
from test_certify_sets import chain_instance

import moebench.exact.chain.method  # noqa: F401  (registers exact-sets / bound-levels)
from moebench.evaluate import gain, is_feasible
from moebench.exact.bruteforce import search_space, solve_bruteforce
from moebench.instance import replace_arrays
from moebench.methods import SolveRequest, Status, get_method
from moebench.tolerances import bound_below

CAPACITIES = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0)


def _scaled(inst, frac: float):
    """The instance with total capacity ``frac`` of all experts, split evenly (whole slots)."""
    s = float(inst.size[0])
    slots = np.floor(frac * inst.G / inst.N + 1e-9)
    return replace_arrays(inst, name=f"{inst.name}-c{frac}", capacity=np.full(inst.N, slots * s))


@pytest.mark.parametrize("method", ["exact-sets", "bound-levels"])
def test_stopped_at_once_still_returns_placement_and_bound(method: str) -> None:
    rng = np.random.default_rng(13)
    checked = 0
    while checked < 60:
        base = chain_instance(rng, f"any{checked}")
        for frac in CAPACITIES:
            inst = _scaled(base, frac)
            if search_space(inst) > 4_000_000:
                continue
            xo, _ = solve_bruteforce(inst)
            opt = gain(inst, xo)
            streamed: list[tuple[np.ndarray, float | None]] = []
            req = SolveRequest(time_limit=0.0, on_incumbent=lambda x, b, out=streamed: out.append((np.array(x), b)))
            sol = get_method(method).solve(inst, req)
            assert sol.status in (Status.OPTIMAL, Status.TIME_LIMIT, Status.FEASIBLE)
            assert is_feasible(inst, sol.placement)
            g = gain(inst, sol.placement)
            assert sol.bound is not None and not bound_below(sol.bound, opt, inst.empty_latency), (
                inst.name,
                sol.bound,
                opt,
            )
            assert g <= sol.bound + 1e-9
            if sol.status == Status.OPTIMAL:
                assert g == pytest.approx(opt, abs=1e-9)
            assert streamed, "nothing streamed before the end"
            for x, b in streamed:
                assert is_feasible(inst, x)
                assert b is not None and not bound_below(b, opt, inst.empty_latency) and gain(inst, x) <= b + 1e-9
            # the last message (what a kill keeps) is never worse than the first
            assert gain(inst, streamed[-1][0]) >= gain(inst, streamed[0][0]) - 1e-12
            checked += 1
