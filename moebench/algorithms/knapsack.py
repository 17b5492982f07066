"""Multiple-choice knapsack over layers: combine per-layer profiles under one budget (SPEC section 4).

Given profiles V_1..V_L (breakpoints ``(weight, value)``, see :mod:`moebench.algorithms.profiles`)
and a budget B, pick one breakpoint per layer maximizing the total value with total weight <= B.

``dp`` (:func:`dp_combine`)
    Exact (max,+) combination F_l = F_{l-1} (+) V_l over integer capacity units, with
    backtracking. Because F_{l-1} is non-decreasing, the best split inside one step of V_l is at
    the step's left end, so F_l(b) = max_k F_{l-1}(b - w_k) + v_k over V_l's breakpoints k: one
    vectorized numpy operation per breakpoint, O(sum_l |V_l| * B). Weights are rounded *up* to
    units and the budget *down*, so every combination it returns fits the real budget; with
    a unit that divides every size exactly (equal expert sizes) it is exact.
``maxconv`` (:func:`maxconv_combine`)
    Sparsify every profile to breakpoints whose values grow by a factor (1 + eps'), merge the
    profiles pairwise in a balanced tree with (max,+) convolution of breakpoint lists, and
    sparsify after each merge, eps' = eps / (2 d + 1), d = ceil(log2 L). Works on real weights
    (no capacity units), so its time does not depend on the capacity or its resolution.

Guarantee of ``maxconv`` (>= (1 - eps) OPT over the profiles). Sparsifying keeps, for every
dropped point (w, v), a kept point (w', v') with w' <= w and v' >= v / (1 + eps') (geometric
buckets, first point of each bucket). A point below the floor f is dropped outright (loss <= f).
Every leaf-to-root path sees d + 1 sparsifications, and there are 2L - 1 nodes, so with
f = eps' d LB / (2L - 1), LB <= OPT (the best single layer's value), the result is at least
(OPT - d eps' OPT) / (1 + eps')^(d+1) >= OPT (1 - (2d + 1) eps') = (1 - eps) OPT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moebench.algorithms.profiles import Profile, pareto


def to_units(weights: np.ndarray, unit: float) -> np.ndarray:
    """Weights in MB -> integer capacity units, rounded up (tolerant to float noise)."""
    return np.ceil(np.asarray(weights, float) / unit - 1e-9).astype(np.int64)


def dp_combine(profiles: Sequence[Profile], budget_units: int, unit: float) -> tuple[list[int], float]:
    """Exact (max,+) combination of profiles in capacity units.

    Parameters
    ----------
    profiles
        One profile per layer.
    budget_units
        Budget in units (already rounded down).
    unit
        MB per unit; weights are rounded up to units.

    Returns
    -------
    choice : list of int
        Chosen breakpoint index of every profile.
    value : float
        Total value of the choice.
    """
    b_max = max(int(budget_units), 0)
    f = np.zeros(b_max + 1)
    wunits = [to_units(p.weights, unit) for p in profiles]
    kmax = max((len(p) for p in profiles), default=1)
    dtype = np.int16 if kmax < 2**15 else np.int32
    arg = np.zeros((len(profiles), b_max + 1), dtype=dtype)
    for layer, (p, wu) in enumerate(zip(profiles, wunits)):
        g = f.copy()
        a = arg[layer]
        for k in range(1, len(p)):
            w = int(wu[k])
            if w > b_max:
                continue
            cand = f[: b_max + 1 - w] + p.values[k]
            better = cand > g[w:]
            if better.any():
                g[w:] = np.where(better, cand, g[w:])
                a[w:][better] = k
        f = g
    choice = [0] * len(profiles)
    b = b_max
    for layer in range(len(profiles) - 1, -1, -1):
        k = int(arg[layer, b])
        choice[layer] = k
        b -= int(wunits[layer][k])
    value = float(sum(p.values[k] for p, k in zip(profiles, choice)))
    return choice, value


@dataclass
class _Node:
    """A (merged) sparse profile with back pointers."""

    w: np.ndarray
    v: np.ndarray
    left: np.ndarray  # index into the left child (or into the leaf profile)
    right: np.ndarray | None
    children: tuple[_Node, _Node] | None
    layer: int = -1


def sparsify(w: np.ndarray, v: np.ndarray, eps: float, floor: float) -> np.ndarray:
    """Indices of a (1 + eps)-sparsification of a Pareto list (ascending w, strictly increasing v).

    Keeps the zero point, drops values below ``floor`` and keeps the lightest point of every
    geometric bucket [ref (1+eps)^i, ref (1+eps)^(i+1)).
    """
    pos = np.flatnonzero((v > 0) & (v >= floor))
    if len(pos) == 0:
        return np.zeros(1, np.int64)
    ref = floor if floor > 0 else float(v[pos[0]])
    bucket = np.floor(np.log(v[pos] / ref) / math.log1p(eps) + 1e-12).astype(np.int64)
    first = np.concatenate([[True], bucket[1:] != bucket[:-1]])  # buckets are non-decreasing
    return np.concatenate([[0], pos[first]])


def _merge(a: _Node, b: _Node, budget: float, eps: float, floor: float) -> _Node:
    w = (a.w[:, None] + b.w[None, :]).ravel()
    v = (a.v[:, None] + b.v[None, :]).ravel()
    ok = np.flatnonzero(w <= budget)
    w, v = w[ok], v[ok]
    keep = pareto(w, v, tol=0.0)
    keep = keep[sparsify(w[keep], v[keep], eps, floor)]
    flat = ok[keep]
    return _Node(w[keep], v[keep], flat // len(b.w), flat % len(b.w), (a, b))


def maxconv_combine(profiles: Sequence[Profile], budget: float, eps: float) -> tuple[list[int], float]:
    """(1 - eps)-approximate combination by sparsified (max,+) convolution in a balanced tree.

    Parameters
    ----------
    profiles
        One profile per layer.
    budget
        Budget in MB.
    eps
        Accuracy, 0 < eps < 1.

    Returns
    -------
    choice : list of int
        Chosen breakpoint index of every profile.
    value : float
        Total value of the choice (>= (1 - eps) of the best combination).
    """
    n = len(profiles)
    if n == 0:
        return [], 0.0
    budget = max(budget, 0.0) * (1 + 1e-12) + 1e-12
    depth = math.ceil(math.log2(n)) if n > 1 else 0
    eps1 = eps / (2 * depth + 1)
    lb = max(float(p.values[p.weights <= budget].max()) for p in profiles)
    floor = eps1 * depth * lb / (2 * n - 1) if depth else 0.0
    nodes: list[_Node] = []
    for layer, p in enumerate(profiles):
        fit = np.flatnonzero(p.weights <= budget)
        idx = fit[sparsify(p.weights[fit], p.values[fit], eps1, floor)]
        nodes.append(_Node(p.weights[idx], p.values[idx], idx, None, None, layer))
    while len(nodes) > 1:
        merged = [_merge(nodes[i], nodes[i + 1], budget, eps1, floor) for i in range(0, len(nodes) - 1, 2)]
        if len(nodes) % 2:
            merged.append(nodes[-1])
        nodes = merged
    root = nodes[0]
    choice = [0] * n
    best = int(np.argmax(root.v))  # values increase with weight: the last point
    stack = [(root, best)]
    while stack:
        node, i = stack.pop()
        if node.children is None:
            choice[node.layer] = int(node.left[i])
        else:
            stack.append((node.children[0], int(node.left[i])))
            stack.append((node.children[1], int(node.right[i])))
    value = float(sum(p.values[k] for p, k in zip(profiles, choice)))
    return choice, value
