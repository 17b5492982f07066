"""Baselines of SPEC section 4: ``none``, ``random``, ``popularity``, ``popularity-indep``,
``layer-uniform`` and ``whole-layer``.

Common rules: an expert is only ever cached on a server where it is faster than its cloud
fallback (anything else cannot lower a latency), and servers are ranked fastest first by
their mean latency over all experts.
"""

from __future__ import annotations

import numpy as np

from moebench.evaluate import empty_placement
from moebench.instance import Instance
from moebench.methods import (
    Method,
    MethodInfo,
    MethodSpec,
    Solution,
    SolveRequest,
    int_arg,
    no_args,
    register_method,
)


class Filler:
    """Incremental placement under the capacities, shared by the baselines."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.x = empty_placement(inst)
        self.free = inst.capacity.astype(float).copy()
        self.useful = inst.latency < inst.fallback[None, :]

    def fits(self, n: int, g: int) -> bool:
        """True when expert g fits the free space of server n and is worth caching there."""
        return bool(self.useful[n, g]) and not self.x[n, g] and self.inst.size[g] <= self.free[n] * (1 + 1e-12)

    def add(self, n: int, g: int) -> None:
        """Cache expert g on server n (caller checked :meth:`fits`)."""
        self.x[n, g] = True
        self.free[n] -= self.inst.size[g]

    def add_first_fit(self, g: int, servers: np.ndarray) -> bool:
        """Cache g on the first server of ``servers`` where it fits; False when none."""
        for n in servers:
            if self.fits(int(n), g):
                self.add(int(n), g)
                return True
        return False


def server_order(inst: Instance) -> np.ndarray:
    """Servers fastest first (mean latency over experts; ties by index)."""
    return np.argsort(inst.latency.mean(axis=1), kind="stable")


def popularity_order(inst: Instance, experts: np.ndarray | None = None) -> np.ndarray:
    """Active experts by marginal activation rate, most active first (ties by id)."""
    g = np.flatnonzero(inst.active) if experts is None else experts[inst.active[experts]]
    return g[np.argsort(-inst.marginals[g], kind="stable")]


def _info(name: str, summary: str, deterministic: bool = True) -> MethodInfo:
    return MethodInfo(name, "baseline", summary, deterministic=deterministic)


@register_method("none", summary="cache nothing: every expert runs in the cloud")
def _none(spec: MethodSpec) -> Method:
    no_args(spec)
    return Method(
        _info("none", "cache nothing (the reference point of the gain)"),
        lambda inst, req: Solution(empty_placement(inst)),
    )


@register_method("random", examples=("random", "random[7]"), summary="random experts in random order (seeded)")
def _random(spec: MethodSpec) -> Method:
    fixed = int_arg(spec.args[0], spec, "seed", lo=0, hi=2**63 - 1) if spec.args else None
    if len(spec.args) > 1 or spec.kwargs:
        no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        rng = np.random.default_rng(req.seed if fixed is None else fixed)
        f = Filler(inst)
        pairs = np.argwhere(f.useful & inst.active[None, :])
        placed = np.zeros(inst.G, dtype=bool)
        for n, g in pairs[rng.permutation(len(pairs))]:
            if not placed[g] and f.fits(n, g):
                f.add(n, g)
                placed[g] = True
        return Solution(f.x, info={"seed": int(req.seed if fixed is None else fixed)})

    summary = "random (server, expert) pairs, no duplicates, until nothing fits"
    return Method(_info(spec.full_name, summary, deterministic=fixed is not None), solve)


@register_method("popularity", summary="most active experts first, fastest server with room, no duplicates")
def _popularity(spec: MethodSpec) -> Method:
    no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        f, servers = Filler(inst), server_order(inst)
        for g in popularity_order(inst):
            f.add_first_fit(int(g), servers)
        return Solution(f.x)

    return Method(_info("popularity", "most active experts on the fastest servers, no duplicates"), solve)


@register_method("popularity-indep", summary="every server caches the most active experts on its own")
def _popularity_indep(spec: MethodSpec) -> Method:
    no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        f = Filler(inst)
        order = popularity_order(inst)
        for n in range(inst.N):
            for g in order:
                if f.fits(n, int(g)):
                    f.add(n, int(g))
        return Solution(f.x)

    return Method(_info("popularity-indep", "each server independently fills with the most active experts"), solve)


@register_method("layer-uniform", summary="capacity split evenly over layers, most active experts per layer")
def _layer_uniform(spec: MethodSpec) -> Method:
    no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        f, servers = Filler(inst), server_order(inst)
        share = inst.capacity / inst.L
        for layer in range(inst.L):
            budget = share.copy()
            experts = np.arange(inst.expert_offset[layer], inst.expert_offset[layer + 1])
            for g in popularity_order(inst, experts):
                for n in servers:
                    if f.fits(int(n), int(g)) and inst.size[g] <= budget[n] * (1 + 1e-12):
                        f.add(int(n), int(g))
                        budget[n] -= inst.size[g]
                        break
        return Solution(f.x)

    summary = "each server gives every layer 1/L of its space, most active experts first"
    return Method(_info("layer-uniform", summary), solve)


def _layer_gain(inst: Instance, layer: int, tau: np.ndarray) -> float:
    lo, hi = inst.set_offset[layer], inst.set_offset[layer + 1]
    return float(inst.probs[lo:hi] @ (inst.base_set_latency[lo:hi] - tau[inst.sets[lo:hi]].max(axis=1)))


@register_method("whole-layer", summary="cache entire layers, best gain per MB first; leftover space by popularity")
def _whole_layer(spec: MethodSpec) -> Method:
    no_args(spec)

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        f, servers = Filler(inst), server_order(inst)
        remaining = set(range(inst.L))
        while remaining:
            best = None
            for layer in sorted(remaining):
                experts = np.arange(inst.expert_offset[layer], inst.expert_offset[layer + 1])
                active = popularity_order(inst, experts)
                trial = Filler(inst)
                trial.x[:], trial.free[:] = f.x, f.free
                if not all(trial.add_first_fit(int(g), servers) for g in active):
                    continue  # the whole layer does not fit any more
                tau = np.minimum(inst.fallback, np.where(trial.x, inst.latency, np.inf).min(axis=0))
                mb = float(inst.size[active].sum())
                score = _layer_gain(inst, layer, tau) / mb if mb > 0 else 0.0
                if best is None or score > best[0] + 1e-15:
                    best = (score, layer, trial)
            if best is None:
                break
            _, layer, trial = best
            f.x[:], f.free[:] = trial.x, trial.free
            remaining.discard(layer)
        whole = sorted(set(range(inst.L)) - remaining)
        for g in popularity_order(inst):  # leftover space: most active remaining experts
            if not f.x[:, g].any():
                f.add_first_fit(int(g), servers)
        return Solution(f.x, info={"whole_layers": whole})

    summary = "whole layers by gain per MB (most active experts on the fastest servers), then popularity"
    return Method(_info("whole-layer", summary), solve)
