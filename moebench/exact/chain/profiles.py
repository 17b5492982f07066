"""Per-layer profiles V_l(b) refined on demand, the (max,+) DP over layers, one level's certificate.

- :func:`greedy_chain`: co-activation-aware greedy lower profile with witnesses;
- :class:`LayerProfile`: proven lower and upper values of V_l(b) for every budget, refined by
  :func:`moebench.exact.chain.coverage.max_coverage` in decision mode;
- :func:`combine`: the exact (max,+) DP over layers for one budget;
- :func:`certify_level`: closes one level's gap by refining the entries its DP uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from moebench.exact.chain import kernel as kern
from moebench.exact.chain.coverage import TOL, max_coverage, quantum, spread_bound
from moebench.exact.chain.lp import lp_profile
from moebench.exact.chain.unions import expand_units


def greedy_chain(
    members: np.ndarray, probs: np.ndarray, bmax: int, *, compiled: bool | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Co-activation-aware greedy: repeatedly add the missing part of the set whose completion
    covers the most new mass per added expert. Returns lo[0..bmax] and a witness per budget
    (compiled by :func:`moebench.exact.chain.kernel.greedy_run` when usable; ``compiled`` forces
    or forbids it)."""
    a = np.asarray(members, dtype=bool)
    if compiled is None:
        compiled = kern.usable(a)
    if compiled:
        lo = np.zeros(bmax + 1)
        wit = np.zeros(bmax + 1, dtype=np.uint64)
        kern.greedy_run(kern.set_masks(a), np.asarray(probs, dtype=np.float64), int(bmax), lo, wit)
        return lo, [kern.mask_to_bool(w, a.shape[1]) for w in wit]
    p = np.asarray(probs, dtype=np.float64)
    e = a.shape[1]
    cur = np.zeros(e, dtype=bool)
    lo = np.zeros(bmax + 1)
    wit = [cur.copy() for _ in range(bmax + 1)]
    size, val = 0, 0.0
    while True:
        miss = a & ~cur[None, :]
        cnt = miss.sum(axis=1)
        cand = np.flatnonzero((cnt > 0) & (cnt <= bmax - size))
        if cand.size == 0:
            break
        live = np.flatnonzero(cnt > 0)
        # gain of completing candidate S: mass of live sets T with missing(T) inside missing(S)
        outside = (~miss[cand]).astype(np.float32)  # (c, E)
        inside = (miss[live].astype(np.float32) @ outside.T) == 0  # (t, c)
        gain = p[live] @ inside
        ratio = gain / cnt[cand]
        i = int(np.argmax(ratio))
        cur = cur | a[cand[i]]
        size, val = int(cur.sum()), val + float(gain[i])
        lo[size:] = val
        for b in range(size, bmax + 1):
            wit[b] = cur.copy()
    return lo, wit


class LayerProfile:
    """V_l(b) for b = 0..bmax, refined on demand: lower values with witnesses, proven upper values.

    Parameters
    ----------
    members, probs
        The layer's activation sets (boolean membership) and probabilities.
    bmax
        Largest budget of interest.
    """

    def __init__(
        self, members: np.ndarray, probs: np.ndarray, bmax: int, use_lp: bool = False, deadline: float | None = None
    ) -> None:
        self.a = np.asarray(members, dtype=bool)
        self.p = np.asarray(probs, dtype=np.float64)
        bmax = int(min(bmax, int(self.a.any(axis=0).sum())))
        self.bmax = bmax
        self.lo, self.witness = greedy_chain(self.a, self.p, bmax)
        self.bits = kern.SetBits.of(self.a) if kern.usable(self.a) else None
        self.hi = np.empty(bmax + 1)
        af = self.a.astype(np.float64)
        cnt = self.a.sum(axis=1)
        none = np.zeros(self.a.shape[1], dtype=bool)
        for b in range(bmax + 1):
            alive = np.flatnonzero((cnt > 0) & (cnt <= b))
            self.hi[b] = 0.0 if alive.size == 0 else spread_bound(af, self.p, alive, cnt[alive], none, b)[0]
        if use_lp and bmax > 0 and len(self.p) > 1:
            lp = lp_profile(self.a, self.p, bmax, deadline)
            if lp is not None:
                self.hi = np.minimum(self.hi, lp)
        self.hi = np.minimum(np.minimum.accumulate(self.hi[::-1])[::-1], float(self.p.sum()))
        self.hi = np.maximum(self.hi, self.lo)
        self.limit = np.zeros(bmax + 1, dtype=np.int64)  # node limit already spent per budget
        self.q = quantum(self.p)
        self.nodes = 0

    def exact(self, b: int) -> bool:
        """True when V(b) is proven."""
        return bool(self.hi[b] - self.lo[b] <= 10 * TOL)

    def set_value(self, b: int, lo: float, hi: float, witness: np.ndarray) -> None:
        """Record a result for budget b and propagate monotonicity of V."""
        if lo > self.lo[b] + TOL:
            for bb in range(b, self.bmax + 1):
                if lo > self.lo[bb] + TOL:
                    self.lo[bb] = lo
                    self.witness[bb] = witness.copy()
        self.hi[: b + 1] = np.minimum(self.hi[: b + 1], max(hi, self.lo[b]))
        self.hi = np.maximum(self.hi, self.lo)

    def refine(self, b: int, node_limit: int, deadline: float | None = None, threshold: float | None = None) -> bool:
        """Search budget b with up to ``node_limit`` nodes (see :func:`max_coverage` for
        ``threshold``); True when V(b) is then proven."""
        if self.exact(b):
            return True
        res = max_coverage(
            self.a,
            self.p,
            b,
            lower=self.lo[b],
            witness=self.witness[b],
            node_limit=node_limit,
            deadline=deadline,
            threshold=threshold,
            bits=self.bits,
        )
        self.nodes += res.nodes
        if res.nodes > node_limit:  # the search was cut off: a revisit gets a larger limit
            self.limit[b] = max(self.limit[b], node_limit)
        self.set_value(b, res.lo, res.hi if not res.done else res.lo, res.witness)
        return self.exact(b)


# ---- the (max,+) DP over layers ----------------------------------------------------------------
def combine(values: list[np.ndarray], budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (max,+) combination of per-layer profiles under a total budget.

    Parameters
    ----------
    values
        values[l][b]: value of layer l with b experts (non-decreasing in b).
    budget
        Total budget P.

    Returns
    -------
    best : ndarray, shape (P + 1,)
        best[B] = max sum_l values[l][b_l] subject to sum_l b_l <= B.
    alloc : ndarray, shape (L,)
        An optimal allocation b_l for the full budget P.
    """
    if kern.HAVE_NUMBA and values:
        width = max(len(v) for v in values)
        mat = np.full((len(values), width), -np.inf)
        for layer, v in enumerate(values):
            mat[layer, : len(v)] = v
        f = np.zeros(budget + 1)
        ch = np.zeros((len(values), budget + 1), dtype=np.int64)
        kern.combine_run(mat, np.array([len(v) for v in values], dtype=np.int64), int(budget), TOL, f, ch)
        choices = list(ch)
    else:
        f, choices = _combine_py(values, budget)
    alloc = np.zeros(len(values), dtype=np.int64)
    rest = budget
    for layer in range(len(values) - 1, -1, -1):
        alloc[layer] = choices[layer][rest]
        rest -= alloc[layer]
    return f, alloc


def combine_units(
    values: list[np.ndarray], budget: int, units: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`combine` when an expert of layer l takes ``units[l]`` capacity units.

    ``values[l][b]`` is the value of b experts of layer l; the budget is in units. Returns the
    final table over units and the allocation in experts per layer (None: every unit is 1).
    """
    if units is None or np.all(np.asarray(units) == 1):
        return combine(values, budget)
    f, alloc = combine([expand_units(v, int(s)) for v, s in zip(values, units)], budget)
    return f, np.asarray(alloc, dtype=np.int64) // np.asarray(units, dtype=np.int64)


def _combine_py(values: list[np.ndarray], budget: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Python reference of the (max,+) DP: final table and per-layer choice tables."""
    f = np.zeros(budget + 1)
    choices = []
    for v in values:
        g = np.full(budget + 1, -np.inf)
        arg = np.zeros(budget + 1, dtype=np.int64)
        for b in range(min(len(v) - 1, budget) + 1):
            cand = np.full(budget + 1, -np.inf)
            cand[b:] = f[: budget + 1 - b] + v[b]
            better = cand > g + TOL
            g = np.where(better, cand, g)
            arg = np.where(better, b, arg)
        f = g
        choices.append(arg)
    return f, choices


# ---- several levels -----------------------------------------------------------------------------
@dataclass
class LevelResult:
    """Certification of one level's single-level problem (nesting dropped)."""

    budget: int
    upper: float  # proven upper bound on max sum_l w[l, j] V_l(b_l), sum b_l <= P_j
    lower: float  # value of the best allocation with known witnesses
    proven: bool


def certify_level(
    profiles: list[LayerProfile],
    weights: np.ndarray,
    budget: int,
    *,
    deadline: float | None,
    node_limit: int,
    grow: bool = True,
    stop_below: float = -np.inf,
    units: np.ndarray | None = None,
) -> tuple[LevelResult, np.ndarray]:
    """Close the gap of one level's (max,+) DP by refining the profile entries its optimum uses.

    The DP over upper profiles gives a proven bound; its allocation is also achievable when the
    profile entries it uses are exact, and then the bound is the optimum. Otherwise the entry
    with the largest weighted gap is searched (node limit growing by 4x on each revisit when
    ``grow``), and the DP is solved again. The loop also stops (``proven`` false) as soon as
    the bound is at most ``stop_below`` (the caller only needs to know that much).

    ``units[l]`` is the capacity taken by one expert of layer l (default 1; ``budget`` is in the
    same units).

    Returns
    -------
    LevelResult, and the allocation (experts per layer) of the best known lower solution.
    """
    while True:
        f, alloc = combine_units([w * pr.hi for w, pr in zip(weights, profiles)], budget, units)
        upper = float(f[budget])
        gaps = [
            (w * (pr.hi[b] - pr.lo[b]), layer)
            for layer, (w, pr, b) in enumerate(zip(weights, profiles, alloc))
            if w > 0 and not pr.exact(b)
        ]
        flo, alloc_lo = combine_units([w * pr.lo for w, pr in zip(weights, profiles)], budget, units)
        lower = float(flo[budget])
        if not gaps or upper - lower <= TOL * max(1.0, upper):
            return LevelResult(budget, max(upper, lower), lower, True), alloc_lo
        if upper <= stop_below or (deadline is not None and time.monotonic() > deadline):
            return LevelResult(budget, upper, lower, False), alloc_lo
        _, layer = max(gaps)
        pr, b = profiles[layer], int(alloc[layer])
        if pr.limit[b] >= node_limit and not grow:
            # every entry the DP wants was searched as far as allowed: the bound stands
            if all(profiles[ly].limit[int(alloc[ly])] >= node_limit for _, ly in gaps):
                return LevelResult(budget, upper, lower, False), alloc_lo
            _, layer = max(g for g in gaps if profiles[g[1]].limit[int(alloc[g[1]])] < node_limit)
            pr, b = profiles[layer], int(alloc[layer])
        limit = node_limit if pr.limit[b] == 0 or not grow else min(4 * int(pr.limit[b]), 10**12)
        # decision search: either V(b) reaches t, or V(b) < t lowers this allocation's bound to `lower`
        w = float(weights[layer])
        step = pr.q if pr.q > 0 else 0.5 * (pr.hi[b] - pr.lo[b])
        t = max(pr.lo[b] + step, pr.hi[b] - (upper - lower) / w)
        pr.refine(b, limit, deadline, threshold=t)
