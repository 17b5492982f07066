"""Combinatorial exact method ``exact-sets``: branch and bound over experts and activation sets.

The reduction (docs/certify.md has the proofs)
-------------------------------------------------
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

Building blocks
---------------
- :func:`max_coverage`: V_l(b) = max_{|C| <= b} f_l(C) for one budget by a depth-first branch and
  bound over experts (include / exclude) with the spread bound, quantum pruning and a decision
  mode (threshold); :class:`LayerProfile` keeps lower/upper profiles refined on demand (upper
  values also from the LP bound of :mod:`moebench.exact.bounds`).
- :func:`combine`: the exact (max,+) DP over layers for one level (one budget);
  :func:`certify_level` closes one level's gap by refining the entries its DP uses.
- :func:`exact_chains`: several levels. The per-level optima with the nesting dropped give an
  upper bound (``bound-levels``); a top-down nested completion gives a feasible chain; when the
  two meet the chain is optimal. Otherwise every top-level solution that could still beat the
  incumbent is enumerated (:func:`closed_unions`) and the levels below are solved recursively
  (each subproblem with the target it must beat, sharing per-layer profiles through a cache).

The node loops (:func:`max_coverage`, :func:`closed_unions`, :func:`greedy_chain`, :func:`combine`)
run compiled from :mod:`moebench.exact.sets_kernel` when numba is installed and a layer has at
most 64 experts; the ``*_py`` functions are the Python references (same results).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from moebench.errors import NotApplicableError
from moebench.exact import sets_kernel as kern
from moebench.exact.bounds import lp_profile
from moebench.instance import Instance

#: Absolute tolerance on probability mass when comparing values (probabilities sum to 1 per layer).
TOL = 1e-12
#: Also use the pair-spread bound in :func:`spread_bound` (tighter, about twice the cost per node).
PAIR_BOUND = False
#: Also use LP upper values in the (cached) profiles of restricted subproblems.
SUB_LP = False
#: Bound the levels below the enumerated one by their own nested optimum (docs/certify.md §3).
STRENGTHEN_REST = True


# ---- the reduction ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainModel:
    """A chain-reducible instance in reduced form.

    Attributes
    ----------
    order : ndarray, shape (N,)
        Servers sorted fastest first (a common order for every layer).
    slots : ndarray, shape (N,)
        Capacity of ``order[j]`` in expert slots.
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
    """

    order: np.ndarray
    slots: np.ndarray
    prefix: np.ndarray
    weights: np.ndarray
    members: list[np.ndarray]
    probs: list[np.ndarray]
    levels: np.ndarray

    @property
    def L(self) -> int:
        """Number of layers."""
        return len(self.members)


def chain_model(inst: Instance) -> ChainModel:
    """Reduce ``inst`` to nested chains, or explain why it is not chain-reducible.

    Raises
    ------
    NotApplicableError
        When expert sizes differ, a layer's latency depends on the expert, a layer's fallback is
        not constant, or no common server order exists.
    """
    size = inst.size
    if not np.all(size == size[0]) or not size[0] > 0:
        raise NotApplicableError("exact-sets needs equal positive expert sizes")
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
    slots = np.floor(inst.capacity[order] / size[0] * (1 + 1e-9) + 1e-9).astype(np.int64)
    members, probs = [], []
    for layer in range(inst.L):
        sets = inst.layer_sets(layer)
        a = np.zeros((len(sets), int(inst.n_experts[layer])), dtype=bool)
        a[np.arange(len(sets))[:, None], sets] = True
        members.append(a)
        probs.append(np.asarray(inst.layer_probs(layer), dtype=np.float64))
    levels = np.flatnonzero(weights.max(axis=0) > 0)
    return ChainModel(order, slots, np.cumsum(slots), weights, members, probs, levels)


# ---- one layer, one budget: branch and bound over experts ---------------------------------------
@dataclass
class BudgetResult:
    """Outcome of :func:`max_coverage` for one budget.

    Attributes
    ----------
    lo : float
        Mass covered by ``witness`` (a lower bound on V(b)).
    hi : float
        Proven upper bound on V(b) (equal to ``lo`` when ``done``).
    witness : ndarray of bool
        At most b experts achieving ``lo``.
    nodes : int
        Search nodes used.
    done : bool
        True when the search finished (``lo`` is V(b)).
    """

    lo: float
    hi: float
    witness: np.ndarray
    nodes: int
    done: bool


def spread_bound(
    a: np.ndarray, p: np.ndarray, alive: np.ndarray, cnt: np.ndarray, inside: np.ndarray, r: int
) -> tuple[float, np.ndarray]:
    """Upper bound on the mass that r more experts can complete, and the spread h.

    Every alive (uncovered, completable) set S with c missing experts spreads pi(S)/c on each of
    them. A set is completed only when all its missing experts are among the r added ones, so
    the completed mass is at most the sum of h over the added experts, hence at most the sum
    of the r largest h (docs/certify.md, "spread bound"). With :data:`PAIR_BOUND` the pair
    spread bound (mass on missing pairs, r - 1 partners per expert) is also taken.
    """
    sub = a[alive]
    pa = p[alive]
    h = (pa / cnt) @ sub
    h[inside] = 0.0
    if r >= h.size:
        return float(h.sum()), h
    ub = float(np.partition(h, h.size - r)[h.size - r :].sum())
    if PAIR_BOUND and r >= 2:
        # pair spread: pi(S)/C(c,2) on each missing pair, pi(S) on the expert of c = 1 sets
        pw = np.where(cnt >= 2, pa / np.maximum(cnt * (cnt - 1) / 2, 1), 0.0)
        q = (sub * pw[:, None]).T @ sub
        np.fill_diagonal(q, 0.0)
        q1 = np.where(cnt == 1, pa, 0.0) @ sub
        k = min(r - 1, q.shape[1] - 1)
        part = np.partition(q, q.shape[1] - k, axis=1)[:, q.shape[1] - k :].sum(axis=1)
        h2 = q1 + 0.5 * part
        h2[inside] = 0.0
        ub = min(ub, float(np.partition(h2, h2.size - r)[h2.size - r :].sum()))
    return ub, h


def quantum(p: np.ndarray) -> float:
    """The largest q such that every weight is an integer multiple of q (0 when there is none).

    Sampled instances have probabilities count / T, so q = 1/T (up to rounding): every value
    is a multiple of q, and a node can only improve on the incumbent when its bound exceeds
    the incumbent by at least q.
    """
    pos = p[p > 0]
    if pos.size == 0:
        return 0.0
    q = float(pos.min())
    ratio = pos / q
    if np.all(np.abs(ratio - np.round(ratio)) <= 1e-9 * ratio):
        return q
    return 0.0


def max_coverage_py(
    members: np.ndarray,
    probs: np.ndarray,
    b: int,
    *,
    lower: float = -1.0,
    witness: np.ndarray | None = None,
    node_limit: int = 1_000_000,
    deadline: float | None = None,
    threshold: float | None = None,
) -> BudgetResult:
    """V(b) = max over expert sets C with |C| <= b of sum_S pi(S) [S <= C], exactly.

    Depth-first branch and bound over experts (include first, then exclude), branching on the
    free expert with the largest spread. Excluding an expert removes every set through it;
    including one lowers the missing counts. Sets that need more experts than the budget left
    are dropped, and a node is pruned when its covered mass plus :func:`spread_bound` does not
    beat the incumbent.

    Parameters
    ----------
    members
        (M, E) boolean membership of the activation sets.
    probs
        (M,) non-negative weights.
    b
        Budget (number of experts).
    lower, witness
        A known solution (value and expert mask) to start from.
    node_limit, deadline
        Stop early (``done`` false; ``hi`` is then the largest bound of the open nodes).
    threshold
        Decision mode: also prune nodes that cannot reach ``threshold``. The search then either
        finds a solution of value >= threshold or proves V(b) < threshold (``hi = threshold``),
        much faster than the optimization when the threshold is well above the incumbent.

    Returns
    -------
    BudgetResult
    """
    a = np.asarray(members, dtype=bool)
    af = a.astype(np.float64)
    p = np.asarray(probs, dtype=np.float64)
    e = a.shape[1]
    # improvements come in whole quanta when all weights are multiples of one (token counts)
    q = quantum(p)
    margin = max(q - TOL, TOL)
    cnt0 = a.sum(axis=1)
    best = max(lower, 0.0)
    best_x = np.zeros(e, dtype=bool) if witness is None or lower < 0 else np.asarray(witness, dtype=bool).copy()
    if lower < 0:
        best = float(p[cnt0 == 0].sum())
    alive0 = np.flatnonzero((cnt0 > 0) & (cnt0 <= b))
    # node: (inside mask, excluded mask, alive ids, their missing counts, covered mass, size)
    stack: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]] = [
        (np.zeros(e, dtype=bool), np.zeros(e, dtype=bool), alive0, cnt0[alive0], float(p[cnt0 == 0].sum()), 0)
    ]
    nodes = 0
    hi_open = -np.inf
    cut = -np.inf if threshold is None else float(threshold)
    if q > 0 and threshold is not None:
        cut = q * np.ceil(cut / q - 1e-9)  # a multiple of the quantum: V < cut means V <= cut - q
    below = cut - q + TOL if q > 0 else cut  # what "V < cut" proves
    slack = 0.5 * q if q > 0 else TOL  # float sums of multiples of q sit within rounding of them
    while stack:
        floor = below if cut > best + margin else best
        inside, out, alive, cnt, val, size = stack.pop()
        nodes += 1
        r = b - size
        if val > best + TOL:
            best, best_x = val, inside.copy()
        if r == 0 or alive.size == 0:
            continue
        ub, h = spread_bound(af, p, alive, cnt, inside, r)
        if val + ub < max(best + margin, cut - slack):
            continue
        if nodes > node_limit or (deadline is not None and nodes % 32 == 0 and time.monotonic() > deadline):
            hi_open = max(hi_open, val + ub)
            for node in stack:
                if node[2].size and b - node[5] > 0:
                    ub2, _ = spread_bound(af, p, node[2], node[3], node[0], b - node[5])
                    hi_open = max(hi_open, node[4] + ub2)
                else:
                    hi_open = max(hi_open, node[4])
            return BudgetResult(best, max(best, hi_open, floor), best_x, nodes, False)
        h[out] = -1.0
        g = int(np.argmax(h))
        if h[g] <= 0:
            continue
        hit = a[alive, g]
        # exclude g: every set through g is dead
        out2 = out.copy()
        out2[g] = True
        stack.append((inside, out2, alive[~hit], cnt[~hit], val, size))
        # include g
        in2 = inside.copy()
        in2[g] = True
        c2 = cnt - hit
        cov = c2 == 0
        keep = ~cov & (c2 <= r - 1)
        stack.append((in2, out, alive[keep], c2[keep], val + float(p[alive[cov]].sum()), size + 1))
    floor = below if cut > best + margin else best
    return BudgetResult(best, max(floor, best), best_x, nodes, floor <= best + TOL)


#: Nodes per compiled-kernel call between deadline checks (about 10-50 ms).
KERNEL_CHUNK = 20_000


def max_coverage(
    members: np.ndarray,
    probs: np.ndarray,
    b: int,
    *,
    lower: float = -1.0,
    witness: np.ndarray | None = None,
    node_limit: int = 1_000_000,
    deadline: float | None = None,
    threshold: float | None = None,
    bits: kern.SetBits | None = None,
    compiled: bool | None = None,
) -> BudgetResult:
    """V(b) = max over expert sets C with |C| <= b of sum_S pi(S) [S <= C], exactly.

    The search of :func:`max_coverage_py` (same bounds, pruning and branching order; see its
    docstring for the parameters), run by the compiled kernel
    :func:`moebench.exact.sets_kernel.cover_run` when numba is installed and the layer has at
    most 64 experts, else by the Python reference.

    Parameters
    ----------
    bits
        Precomputed :class:`~moebench.exact.sets_kernel.SetBits` of ``members`` (saves the
        conversion when the same layer is searched many times).
    compiled
        Force (True) or forbid (False) the compiled kernel; None picks it when usable.

    Returns
    -------
    BudgetResult
    """
    a = np.asarray(members, dtype=bool)
    if compiled is None:
        compiled = kern.usable(a)
    if not compiled:
        return max_coverage_py(
            a, probs, b, lower=lower, witness=witness, node_limit=node_limit, deadline=deadline, threshold=threshold
        )
    p = np.asarray(probs, dtype=np.float64)
    e = a.shape[1]
    bits = kern.SetBits.of(a) if bits is None else bits
    q = quantum(p)
    margin = max(q - TOL, TOL)
    cnt0 = bits.cnt
    empty = float(p[cnt0 == 0].sum())
    best = max(lower, 0.0)
    best_x = np.zeros(e, dtype=bool) if witness is None or lower < 0 else np.asarray(witness, dtype=bool).copy()
    if lower < 0:
        best = empty
    cut = -np.inf if threshold is None else float(threshold)
    if q > 0 and threshold is not None:
        cut = q * np.ceil(cut / q - 1e-9)  # a multiple of the quantum: V < cut means V <= cut - q
    below = cut - q + TOL if q > 0 else cut
    slack = 0.5 * q if q > 0 else TOL
    st = kern.DfsState.root(cnt0, p, e, b, best)
    start_best = st.best[0]
    args = st.args()
    while True:
        st.ints[2] = min(node_limit, int(st.ints[1]) + KERNEL_CHUNK)
        code = kern.cover_run(bits.masks, bits.idx, p, e, b, margin, cut, slack, TOL, *args)
        if code == kern.DONE:
            break
        if st.ints[1] >= node_limit or (deadline is not None and time.monotonic() > deadline):
            hi_open = kern.cover_open_bound(
                bits.masks, bits.idx, p, e, b, st.alive, st.cnt, st.n_alive, st.inside, st.val, st.ub, st.size,
                st.phase, st.branch, st.ints,
            )  # fmt: skip
            best = float(st.best[0])
            if best > start_best:
                best_x = kern.mask_to_bool(st.best_mask[0], e)
            floor = below if cut > best + margin else best
            nodes = int(st.ints[1]) + (1 if st.ints[1] >= node_limit else 0)
            return BudgetResult(best, max(best, hi_open, floor), best_x, nodes, False)
    best = float(st.best[0])
    if best > start_best:
        best_x = kern.mask_to_bool(st.best_mask[0], e)
    floor = below if cut > best + margin else best
    return BudgetResult(best, max(floor, best), best_x, int(st.ints[1]), floor <= best + TOL)


# ---- lazily refined per-layer profiles ----------------------------------------------------------
def greedy_chain(
    members: np.ndarray, probs: np.ndarray, bmax: int, *, compiled: bool | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Co-activation-aware greedy: repeatedly add the missing part of the set whose completion
    covers the most new mass per added expert. Returns lo[0..bmax] and a witness per budget
    (compiled by :func:`moebench.exact.sets_kernel.greedy_run` when usable; ``compiled`` forces
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

    level: int
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
) -> tuple[LevelResult, np.ndarray]:
    """Close the gap of one level's (max,+) DP by refining the profile entries its optimum uses.

    The DP over upper profiles gives a proven bound; its allocation is also achievable when the
    profile entries it uses are exact, and then the bound is the optimum. Otherwise the entry
    with the largest weighted gap is searched (node limit growing by 4x on each revisit when
    ``grow``), and the DP is solved again. The loop also stops (``proven`` false) as soon as
    the bound is at most ``stop_below`` (the caller only needs to know that much).

    Returns
    -------
    LevelResult, and the allocation of the best known lower solution.
    """
    while True:
        f, alloc = combine([w * pr.hi for w, pr in zip(weights, profiles)], budget)
        upper = float(f[budget])
        gaps = [
            (w * (pr.hi[b] - pr.lo[b]), layer)
            for layer, (w, pr, b) in enumerate(zip(weights, profiles, alloc))
            if w > 0 and not pr.exact(b)
        ]
        flo, alloc_lo = combine([w * pr.lo for w, pr in zip(weights, profiles)], budget)
        lower = float(flo[budget])
        if not gaps or upper - lower <= TOL * max(1.0, upper):
            return LevelResult(-1, budget, max(upper, lower), lower, True), alloc_lo
        if upper <= stop_below:
            return LevelResult(-1, budget, upper, lower, False), alloc_lo
        if deadline is not None and time.monotonic() > deadline:
            return LevelResult(-1, budget, upper, lower, False), alloc_lo
        _, layer = max(gaps)
        pr, b = profiles[layer], int(alloc[layer])
        if pr.limit[b] >= node_limit and not grow:
            # every entry the DP wants was searched as far as allowed: the bound stands
            tried = all(profiles[ly].limit[int(alloc[ly])] >= node_limit for _, ly in gaps)
            if tried:
                return LevelResult(-1, budget, upper, lower, False), alloc_lo
            _, layer = max(g for g in gaps if profiles[g[1]].limit[int(alloc[g[1]])] < node_limit)
            pr, b = profiles[layer], int(alloc[layer])
        limit = node_limit if pr.limit[b] == 0 or not grow else min(4 * int(pr.limit[b]), 10**12)
        # decision search: either V(b) reaches t, or V(b) < t lowers this allocation's bound to `lower`
        w = float(weights[layer])
        step = pr.q if pr.q > 0 else 0.5 * (pr.hi[b] - pr.lo[b])
        t = max(pr.lo[b] + step, pr.hi[b] - (upper - lower) / w)
        pr.refine(b, limit, deadline, threshold=t)


def _restricted(members: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Sets that lie inside ``allowed`` (the others can never be covered)."""
    return ~(members & ~allowed[None, :]).any(axis=1)


def chain_value(model: ChainModel, chains: list[list[np.ndarray]]) -> float:
    """Layer-cake gain sum_l sum_j w[l, j] f_l(C[l, j]) of per-level, per-layer expert masks."""
    total = 0.0
    for j, per_layer in enumerate(chains):
        for layer, c in enumerate(per_layer):
            w = model.weights[layer, j]
            if w > 0:
                a, p = model.members[layer], model.probs[layer]
                total += w * float(p[~(a & ~c[None, :]).any(axis=1)].sum())
    return total


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


# ---- exact several levels: top-down enumeration ---------------------------------------------------
class Timeout(Exception):
    """The deadline passed during the exact search."""


def suffix_tables(values: list[np.ndarray], budget: int) -> list[np.ndarray]:
    """tables[l][B] = max sum_{l' >= l} values[l'][b] with sum b <= B (tables[L] = 0)."""
    f = np.zeros(budget + 1)
    out = [f]
    for v in reversed(values):
        g = f.copy()
        for b in range(1, min(len(v) - 1, budget) + 1):
            g[b:] = np.maximum(g[b:], f[: budget + 1 - b] + v[b])
        g = np.maximum(g, f + v[0])
        f = g
        out.append(f)
    return out[::-1]


def closed_unions_py(
    members: np.ndarray, probs: np.ndarray, need: np.ndarray, deadline: float | None
) -> Iterator[tuple[np.ndarray, int, float]]:
    """Every union U of activation sets with f(U) >= need[|U|] (|U| < len(need)), once each.

    Depth-first over experts (include / exclude), so every expert subset is visited at most
    once; a subset is produced only when it is *closed* (each of its experts lies in a covered
    set). A node is pruned when an included expert lies in no covered or completable set, or
    when no size s it can reach has covered mass plus the top-(s - |I|) spread of the alive
    sets (:func:`spread_bound`) at least need[s]. Yields (mask, size, value).
    """
    a = np.asarray(members, dtype=bool)
    p = np.asarray(probs, dtype=np.float64)
    af = a.astype(np.float64)
    bmax = len(need) - 1
    e = a.shape[1]
    need = np.asarray(need, dtype=np.float64)
    slack = TOL
    q = quantum(p)
    if q > 0:
        # values are multiples of q: round each requirement up to one (a requirement within
        # 1e-6 q above a multiple counts as that multiple, which only admits more) and compare
        # float sums with slack q/2
        finite = np.isfinite(need)
        need = np.where(finite, q * np.ceil(np.where(finite, need, 0.0) / q - 1e-6), need)
        slack = 0.5 * q
    cnt0 = a.sum(axis=1)
    alive0 = np.flatnonzero((cnt0 > 0) & (cnt0 <= bmax))
    covered0 = np.zeros(e, dtype=bool)
    # node: (inside, out, covered union, alive ids, missing counts, mass, size, new subset?)
    stack = [
        (
            np.zeros(e, dtype=bool),
            np.zeros(e, dtype=bool),
            covered0,
            alive0,
            cnt0[alive0],
            float(p[cnt0 == 0].sum()),
            0,
            True,
        )
    ]
    visits = 0
    while stack:
        inside, out, covered, alive, cnt, val, size, new = stack.pop()
        visits += 1
        if deadline is not None and visits % 64 == 0 and time.monotonic() > deadline:
            raise Timeout
        # an exclude child has its parent's subset, which was already reported
        if new and val >= need[size] - slack and np.array_equal(covered, inside):
            yield inside, size, val
        r = bmax - size
        if r == 0 or alive.size == 0:
            continue
        # every included expert must end up in a covered set
        reach = covered | a[alive].any(axis=0)
        if np.any(inside & ~reach):
            continue
        h = (p[alive] / cnt) @ af[alive]
        h[inside] = 0.0
        top = np.concatenate([[0.0], np.cumsum(-np.sort(-h))[:r]])
        top = np.concatenate([top, np.full(r + 1 - top.size, top[-1])])
        if not np.any(val + top[1:] >= need[size + 1 : size + r + 1] - slack):
            continue
        h[out] = -1.0
        g = int(np.argmax(h))
        if h[g] <= 0:
            continue
        hit = a[alive, g]
        out2 = out.copy()
        out2[g] = True
        stack.append((inside, out2, covered, alive[~hit], cnt[~hit], val, size, False))
        in2 = inside.copy()
        in2[g] = True
        c2 = cnt - hit
        cov = c2 == 0
        keep = ~cov & (c2 <= r - 1)
        cov2 = covered | a[alive[cov]].any(axis=0) if cov.any() else covered
        stack.append((in2, out, cov2, alive[keep], c2[keep], val + float(p[alive[cov]].sum()), size + 1, True))


def closed_unions(
    members: np.ndarray,
    probs: np.ndarray,
    need: np.ndarray,
    deadline: float | None,
    *,
    bits: kern.SetBits | None = None,
    compiled: bool | None = None,
) -> Iterator[tuple[np.ndarray, int, float]]:
    """Every union U of activation sets with f(U) >= need[|U|] (|U| < len(need)), once each.

    The enumeration of :func:`closed_unions_py` (same pruning and order; see its docstring), run
    by the compiled kernel :func:`moebench.exact.sets_kernel.unions_run` when numba is installed
    and the layer has at most 64 experts (``compiled`` forces or forbids it). Yields (mask, size,
    value); raises :class:`Timeout` after ``deadline``.
    """
    a = np.asarray(members, dtype=bool)
    if compiled is None:
        compiled = kern.usable(a)
    if not compiled:
        yield from closed_unions_py(a, probs, need, deadline)
        return
    p = np.asarray(probs, dtype=np.float64)
    e = a.shape[1]
    bits = kern.SetBits.of(a) if bits is None else bits
    bmax = len(need) - 1
    need = np.asarray(need, dtype=np.float64)
    slack = TOL
    q = quantum(p)
    if q > 0:
        finite = np.isfinite(need)
        need = np.where(finite, q * np.ceil(np.where(finite, need, 0.0) / q - 1e-6), need)
        slack = 0.5 * q
    st = kern.DfsState.root(bits.cnt, p, e, bmax, 0.0)
    args = st.args()
    while True:
        st.ints[2] = int(st.ints[1]) + KERNEL_CHUNK
        code = kern.unions_run(bits.masks, bits.idx, p, e, bmax, need, slack, *args)
        if code == kern.DONE:
            return
        if code == kern.YIELD:
            d = int(st.ints[0])
            yield kern.mask_to_bool(st.inside[d], e), int(st.size[d]), float(st.val[d])
        if deadline is not None and time.monotonic() > deadline:
            raise Timeout


def _level_solutions(
    members: list[np.ndarray],
    probs: list[np.ndarray],
    weights: np.ndarray,
    budget: int,
    hi_values: list[np.ndarray],
    threshold: list[float],
    deadline: float | None,
) -> Iterator[tuple[list[np.ndarray], float]]:
    """Every per-layer tuple of closed unions with sum_l w_l f_l(U_l) >= threshold[0] and total size
    <= budget. The caller may raise threshold[0] between yields (its incumbent improved); the
    enumeration then prunes with the new value from the next layer search on."""
    nl = len(members)
    suffix = suffix_tables(hi_values, budget)
    bits = [kern.SetBits.of(a) if kern.usable(a) else None for a in members]
    chosen: list[np.ndarray] = [None] * nl  # type: ignore[list-item]

    def rec(layer: int, left: int, acc: float) -> Iterator[tuple[list[np.ndarray], float]]:
        thr = threshold[0]
        if layer == nl:
            if acc >= thr - TOL * max(1.0, abs(thr)):
                yield list(chosen), acc
            return
        w = weights[layer]
        bmax = min(left, members[layer].shape[1])
        sizes = np.arange(bmax + 1)
        rest = suffix[layer + 1][left - sizes]
        if w > 0:
            need = (thr - acc - rest) / w
        else:
            need = np.where(sizes == 0, -np.inf, np.inf)  # a zero-weight layer keeps nothing here
        for u, size, val in closed_unions(members[layer], probs[layer], need, deadline, bits=bits[layer]):
            chosen[layer] = u
            yield from rec(layer + 1, left - size, acc + w * val)

    yield from rec(0, budget, 0.0)


def exact_chains(
    model: ChainModel,
    *,
    deadline: float | None = None,
    node_limit: int = 20_000,
    allowed: list[np.ndarray] | None = None,
    levels: list[int] | None = None,
    grow: bool = True,
    enumerate_levels: bool = True,
    lp: bool = True,
    on_incumbent: Callable[[dict[int, list[np.ndarray]], float], None] | None = None,
    target: float = -np.inf,
    cache: dict | None = None,
) -> tuple[dict[int, list[np.ndarray]], float, float, bool, int]:
    """Exact optimum over nested chains inside ``allowed`` (per layer) for the given levels.

    With a ``target`` only solutions of value > target matter (the caller has a solution that
    good): ``proven`` then means that the optimum is at most max(value, target), and the search
    stops as soon as its bound drops to the target. ``cache`` maps (layer, allowed experts) to
    that layer's :class:`LayerProfile` and is shared by the recursive subproblems.

    Bound and heuristic first; when they do not meet, every top
    level solution that could still beat the incumbent, value_t(C_t) + sum_{j < t} UB_j > LB, is
    enumerated (:func:`closed_unions` across layers with suffix DP bounds), and the levels below
    are solved recursively inside it. Exact when every level has positive weight in all layers
    or in none (otherwise only the bound and the heuristic are used).

    Returns
    -------
    chains : dict level -> per-layer masks
    value : float
        Layer-cake value of ``chains`` over ``levels``.
    upper : float
        Proven upper bound.
    proven : bool
    nodes : int
    """
    nl = model.L
    if allowed is None:
        allowed = [np.ones(a.shape[1], dtype=bool) for a in model.members]
    if levels is None:
        levels = [int(j) for j in model.levels]
    members, probs = [], []
    for layer in range(nl):
        keep = _restricted(model.members[layer], allowed[layer])
        members.append(model.members[layer][keep])
        probs.append(model.probs[layer][keep])
    if not levels:
        return {}, 0.0, 0.0, True, 0
    top_budget = int(model.prefix[levels[-1]])
    if cache is None:
        cache = {}

    def profile(ly: int, inside: np.ndarray) -> LayerProfile:
        # a layer's profile depends only on its allowed experts: sibling subproblems share them
        # (with every refinement already made); LP upper values only at the root
        key = (ly, inside.tobytes())
        if key not in cache:
            keep = _restricted(model.members[ly], inside)
            cache[key] = LayerProfile(model.members[ly][keep], model.probs[ly][keep], int(inside.sum()), use_lp=SUB_LP)
        return cache[key]

    if lp:
        profiles = [
            LayerProfile(members[ly], probs[ly], min(top_budget, int(allowed[ly].sum())), use_lp=lp, deadline=deadline)
            for ly in range(nl)
        ]
        for ly, pr in enumerate(profiles):  # every later budget is at most top_budget
            cache[(ly, allowed[ly].tobytes())] = pr
    else:
        profiles = [profile(ly, allowed[ly]) for ly in range(nl)]
    nodes0 = sum(pr.nodes for pr in profiles)
    ubs = {}
    if np.isfinite(target):
        # cheap bound first: the DP over the initial upper profiles of every level
        for j in levels:
            f, _ = combine([w * pr.hi for w, pr in zip(model.weights[:, j], profiles)], int(model.prefix[j]))
            ubs[j] = (float(f[-1]), False)
        if sum(u for u, _ in ubs.values()) <= target + 1e-9 * max(1.0, abs(target)):
            return {}, -np.inf, float(sum(u for u, _ in ubs.values())), True, 0
    for j in sorted(levels, key=lambda j: -float(model.weights[:, j].sum())):
        others = sum(u for jj, (u, _) in ubs.items() if jj != j)
        res, _ = certify_level(
            profiles,
            model.weights[:, j],
            int(model.prefix[j]),
            deadline=deadline,
            node_limit=node_limit,
            grow=grow,
            stop_below=target - others - 1e-9 * max(1.0, abs(target)),
        )
        ubs[j] = (res.upper, res.proven)
        if sum(u for u, _ in ubs.values()) <= target + 1e-9 * max(1.0, abs(target)):
            nodes = sum(pr.nodes for pr in profiles) - nodes0
            return {}, -np.inf, float(sum(u for u, _ in ubs.values())), True, nodes
    upper = sum(u for u, _ in ubs.values())
    # top-down nested heuristic
    chains: dict[int, list[np.ndarray]] = {}
    above = allowed
    for j in sorted(levels, reverse=True):
        if above is allowed:
            profs = profiles
        else:
            profs = [profile(ly, above[ly]) for ly in range(nl)]
        _, alloc = certify_level(
            profs, model.weights[:, j], int(model.prefix[j]), deadline=deadline, node_limit=node_limit, grow=grow
        )
        full = []
        for ly in range(nl):
            c = profs[ly].witness[int(alloc[ly])]
            full.append(c & above[ly])
        chains[j] = full
        above = full
    value = _levels_value(model, chains)
    nodes = sum(pr.nodes for pr in profiles) - nodes0
    if on_incumbent is not None:
        on_incumbent(chains, upper)
    tol = 1e-9 * max(1.0, upper)
    if value >= upper - tol:
        return chains, value, max(upper, value), True, nodes
    goal = max(value, target)  # what a better solution must beat
    if goal >= upper - tol:
        return chains, value, upper, True, nodes
    t, rest = levels[-1], levels[:-1]
    uniform = all(bool(np.all(model.weights[:, j] > 0) or np.all(model.weights[:, j] == 0)) for j in levels)
    if not enumerate_levels or not rest or not uniform or not all(p for _, p in ubs.values()):
        return chains, value, upper, False, nodes
    rest_ub = sum(ubs[j][0] for j in rest)
    if STRENGTHEN_REST and len(rest) >= 2:
        # the levels below t on their own, nested, inside `allowed`: their optimum bounds the rest
        # of every candidate (C_t lies inside `allowed`) and is tighter than the per-level sum;
        # only values above goal - UB_t matter
        need = goal - ubs[t][0]
        _, rv, _, rproven, rnodes = exact_chains(
            model,
            deadline=deadline,
            node_limit=node_limit,
            allowed=allowed,
            levels=rest,
            grow=grow,
            lp=False,
            target=need,
            cache=cache,
        )
        nodes += rnodes
        if rproven:
            rest_ub = min(rest_ub, max(rv, need))
            if ubs[t][0] + rest_ub <= goal + tol:
                return chains, value, max(value, target), True, nodes
    box = [goal - rest_ub]  # the enumeration threshold, raised whenever the incumbent improves
    try:
        sols = _level_solutions(
            members,
            probs,
            model.weights[:, t],
            int(model.prefix[t]),
            [model.weights[ly, t] * pr.hi for ly, pr in enumerate(profiles)],
            box,
            deadline,
        )
        for tops, vt in sols:
            goal = max(value, target)
            if vt + rest_ub <= goal + tol:
                continue
            # only a completion worth more than goal - vt matters below this top level
            sub, sub_value, _, sub_proven, sub_nodes = exact_chains(
                model,
                deadline=deadline,
                node_limit=node_limit,
                allowed=tops,
                levels=rest,
                grow=grow,
                lp=False,
                target=goal - vt,
                cache=cache,
            )
            nodes += sub_nodes
            if not sub_proven:
                return chains, value, upper, False, nodes
            if vt + sub_value > value + tol:
                chains = {**sub, t: tops}
                value = _levels_value(model, chains)
                box[0] = max(value, target) - rest_ub
    except Timeout:
        return chains, value, upper, False, nodes
    return chains, value, max(value, target), True, nodes


def _levels_value(model: ChainModel, chains: dict[int, list[np.ndarray]]) -> float:
    total = 0.0
    for j, per_layer in chains.items():
        for layer, c in enumerate(per_layer):
            w = model.weights[layer, j]
            if w > 0:
                a, p = model.members[layer], model.probs[layer]
                total += w * float(p[~(a & ~c[None, :]).any(axis=1)].sum())
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
