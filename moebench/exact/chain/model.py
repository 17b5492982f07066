"""The chain reduction of ``exact-sets`` (docs/certify.md section 1 has the proofs).

Call an instance *chain-reducible* when

1. every expert has the same size s > 0 (capacities become whole slots c_n = floor(Q_n / s)),
2. within each layer l the latency depends on the server only, T[n, l, e] = t[n, l], and the
   fallback is constant, T0[l, e] = T0[l],
3. one order of the servers sorts t[., l] non-decreasingly in every layer (ties allowed).

Then some optimal placement caches every expert at most once, and with servers sorted fastest
first (n = 0..N-1) the experts of layer l cached on servers 0..j form nested sets
C[l, 0] <= C[l, 1] <= ... <= C[l, N-1]. The gain is the layer cake

    R = sum_l sum_j w[l, j] * f_l(C[l, j]),   f_l(C) = sum_S pi_l(S) [S <= C],
    w[l, j] = min(T0_l, t[j+1, l]) - min(T0_l, t[j, l])   (t[N, l] := T0_l),

and a family of nested sets is realizable iff the prefix budgets hold,
sum_l |C[l, j]| <= P_j = c_0 + ... + c_j (Hall's condition for nested neighbourhoods).
This module holds the reduced model and the maps between chains and placements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moebench.errors import NotApplicableError
from moebench.instance import Instance


@dataclass(frozen=True)
class ChainModel:
    """A chain-reducible instance in reduced form.

    Attributes
    ----------
    order : ndarray, shape (N,)
        Servers sorted fastest first (a common order for every layer).
    slots : ndarray, shape (N,)
        Capacity of ``order[j]`` in whole capacity units (one unit = the smallest expert size).
    prefix : ndarray, shape (N,)
        P_j = slots[0] + ... + slots[j].
    weights : ndarray, shape (L, N)
        w[l, j] >= 0: gain per unit of full-coverage probability at level j in layer l.
    members : list of ndarray
        Per layer, a (M_l, E_l) boolean membership matrix of its activation sets.
    probs : list of ndarray
        Per layer, the probabilities of its sets.
    levels : ndarray
        Indices j of the levels with some positive weight (the others are redundant).
    units : ndarray of int64, shape (L,)
        Size of one expert of layer l in capacity units (all 1 when every expert has one size).
    """

    order: np.ndarray
    slots: np.ndarray
    prefix: np.ndarray
    weights: np.ndarray
    members: list[np.ndarray]
    probs: list[np.ndarray]
    levels: np.ndarray
    units: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.units is None:
            object.__setattr__(self, "units", np.ones(len(self.members), dtype=np.int64))

    @property
    def L(self) -> int:
        """Number of layers."""
        return len(self.members)

    @property
    def exact_packing(self) -> bool:
        """True when every expert has the same size: nested chains within the prefix budgets are
        then exactly the placements (Claim 3); with several sizes they are a relaxation."""
        return bool(np.all(self.units == 1))


def chain_model(inst: Instance) -> ChainModel:
    """Reduce ``inst`` to nested chains, or explain why it is not chain-reducible.

    Expert sizes may differ between layers when each is a whole multiple of the smallest (an
    int4 / int8 / bf16 mix); capacities are then counted in units of the smallest size, and the
    model is a relaxation of the instance (see :attr:`ChainModel.exact_packing`).

    Raises
    ------
    NotApplicableError
        When sizes differ within a layer or are not whole multiples of the smallest, a layer's
        latency depends on the expert, a layer's fallback is not constant, or no common server
        order exists.
    """
    size = inst.size
    if not np.all(size > 0):
        raise NotApplicableError("exact-sets needs positive expert sizes")
    unit = float(size.min())
    units = np.empty(inst.L, dtype=np.int64)
    for layer in range(inst.L):
        s = size[inst.expert_offset[layer] : inst.expert_offset[layer + 1]]
        if s.size and not np.all(s == s[0]):
            raise NotApplicableError(f"exact-sets needs one expert size per layer (layer {layer})")
        ratio = float(s[0]) / unit if s.size else 1.0
        if abs(ratio - round(ratio)) > 1e-9 * ratio:
            raise NotApplicableError(
                f"exact-sets needs expert sizes that are whole multiples of the smallest (layer {layer}: {ratio:g})"
            )
        units[layer] = round(ratio)
    t = np.empty((inst.N, inst.L))
    t0 = np.empty(inst.L)
    for layer in range(inst.L):
        lo, hi = inst.expert_offset[layer], inst.expert_offset[layer + 1]
        lat, fb = inst.latency[:, lo:hi], inst.fallback[lo:hi]
        if not np.all(lat == lat[:, :1]):
            raise NotApplicableError(f"exact-sets needs latencies that depend on the server only (layer {layer})")
        if not np.all(fb == fb[0]):
            raise NotApplicableError(f"exact-sets needs a constant fallback latency per layer (layer {layer})")
        t[:, layer], t0[layer] = lat[:, 0], fb[0]
    # a common order: sort lexicographically by (layer 0, layer 1, ...), then verify every layer
    order = np.lexsort(t.T[::-1])
    u = np.minimum(t[order], t0[None, :])  # (N, L) effective latency of level j
    if np.any(np.diff(t[order], axis=0) < 0):
        raise NotApplicableError("exact-sets needs one server order that is fastest-first in every layer")
    u = np.vstack([u, t0[None, :]])
    weights = np.diff(u, axis=0).T  # (L, N)
    slots = np.floor(inst.capacity[order] / unit * (1 + 1e-9) + 1e-9).astype(np.int64)
    members, probs = [], []
    for layer in range(inst.L):
        sets = inst.layer_sets(layer)
        a = np.zeros((len(sets), int(inst.n_experts[layer])), dtype=bool)
        a[np.arange(len(sets))[:, None], sets] = True
        members.append(a)
        probs.append(np.asarray(inst.layer_probs(layer), dtype=np.float64))
    levels = np.flatnonzero(weights.max(axis=0) > 0)
    return ChainModel(order, slots, np.cumsum(slots), weights, members, probs, levels, units)


def restricted(members: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Sets that lie inside ``allowed`` (the others can never be covered)."""
    return ~(members & ~allowed[None, :]).any(axis=1)


def chain_value(model: ChainModel, chains: list[list[np.ndarray]]) -> float:
    """Layer-cake gain sum_l sum_j w[l, j] f_l(C[l, j]) of per-level, per-layer expert masks."""
    return levels_value(model, dict(enumerate(chains)))


def chains_to_placement(inst: Instance, model: ChainModel, chains: list[list[np.ndarray]]) -> np.ndarray:
    """Placement realizing nested chains: experts sorted by the first level that needs them fill
    the servers fastest first (feasible whenever every prefix budget holds: Hall's condition)."""
    deadline = np.full(inst.G, -1, dtype=np.int64)
    for j in range(len(chains) - 1, -1, -1):
        for layer, c in enumerate(chains[j]):
            g = inst.expert_offset[layer] + np.flatnonzero(c)
            deadline[g] = j
    todo = np.flatnonzero(deadline >= 0)
    todo = todo[np.argsort(deadline[todo], kind="stable")]
    if not model.exact_packing:
        return _pack(inst, model, todo, deadline)
    x = np.zeros((inst.N, inst.G), dtype=bool)
    pos = 0
    for j, server in enumerate(model.order):
        take = todo[pos : pos + int(model.slots[j])]
        if take.size and np.any(deadline[take] < j):
            raise AssertionError("prefix budget violated: the chains are not realizable")
        x[server, take] = True
        pos += take.size
    if pos < todo.size:
        raise AssertionError("the chains need more slots than the servers have")
    return x


def _pack(inst: Instance, model: ChainModel, todo: np.ndarray, deadline: np.ndarray) -> np.ndarray:
    """Experts in deadline order (larger first within a deadline), each on the fastest server
    with room left; an expert that fits nowhere is left out. Always feasible; it realizes the
    chains (every expert by its deadline) when the sizes pack, which is not guaranteed."""
    size_u = model.units[inst.layer_of]
    todo = todo[np.lexsort((-size_u[todo], deadline[todo]))]
    room = model.slots.copy()
    x = np.zeros((inst.N, inst.G), dtype=bool)
    for g in todo:
        fit = np.flatnonzero(room >= size_u[g])
        if fit.size:
            j = int(fit[0])
            room[j] -= size_u[g]
            x[model.order[j], g] = True
    return x


def levels_value(model: ChainModel, chains: dict[int, list[np.ndarray]]) -> float:
    """Layer-cake value of chains given for some levels only (a dict level -> per-layer masks)."""
    total = 0.0
    for j, per_layer in chains.items():
        for layer, c in enumerate(per_layer):
            w = model.weights[layer, j]
            if w > 0:
                total += w * float(model.probs[layer][restricted(model.members[layer], c)].sum())
    return total


def full_chains(model: ChainModel, chains: dict[int, list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Per-level chains for all N levels: a level without weight copies the nearest level below."""
    empty = [np.zeros(a.shape[1], dtype=bool) for a in model.members]
    out: list[list[np.ndarray]] = []
    last = empty
    for j in range(len(model.slots)):
        if j in chains:
            last = chains[j]
        out.append([c.copy() for c in last])
    return out


def placement_chains(inst: Instance, model: ChainModel, x: np.ndarray) -> list[list[np.ndarray]]:
    """Nested chains C[l, j] of a placement: experts of layer l cached on servers order[0..j]."""
    x = np.asarray(x, dtype=bool)
    out = []
    avail = np.zeros(inst.G, dtype=bool)
    for server in model.order:
        avail = avail | x[server]
        out.append([avail[inst.expert_offset[ly] : inst.expert_offset[ly + 1]].copy() for ly in range(inst.L)])
    return out


def trivial_bound(model: ChainModel) -> float:
    """Gain of covering every set at the fastest level: sum_l sum_j w[l, j] * mass_l >= R*."""
    mass = np.array([float(p.sum()) for p in model.probs])
    return float((model.weights.sum(axis=1) * mass).sum())
