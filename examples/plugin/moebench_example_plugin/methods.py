"""The ``cheapest-first`` method: smallest expert per unit of activation first.

Registered on import (the ``moebench.methods`` entry point names this module).
"""

from __future__ import annotations

import numpy as np

from moebench.evaluate import empty_placement
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, no_args, register_method


def _solve(inst: Instance, req: SolveRequest) -> Solution:
    """Active experts by size / marginal rate ascending, each on the fastest server with room."""
    x = empty_placement(inst)
    free = inst.capacity.astype(float).copy()
    servers = np.argsort(inst.latency.mean(axis=1), kind="stable")
    g = np.flatnonzero(inst.active)
    order = g[np.argsort(inst.size[g] / inst.marginals[g], kind="stable")]
    for e in order:
        for n in servers:
            if inst.latency[n, e] < inst.fallback[e] and inst.size[e] <= free[n] * (1 + 1e-12):
                x[n, e] = True
                free[n] -= inst.size[e]
                break
    return Solution(x)


@register_method("cheapest-first", summary="(plugin) smallest MB per unit of activation first, fastest server")
def cheapest_first(spec: MethodSpec) -> Method:
    """Build the method (it takes no bracket arguments)."""
    no_args(spec)
    return Method(
        MethodInfo(
            "cheapest-first",
            "heuristic",
            "(plugin) experts by size / activation rate, fastest server with room, no duplicates",
        ),
        _solve,
    )
