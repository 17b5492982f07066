"""Compiled node loops of the ``exact-sets`` branch and bound (numba, bitsets).

The two depth-first searches of the chain method -- :func:`~moebench.exact.chain.coverage.max_coverage`
(V(b), include / exclude over experts, spread bound) and :func:`~moebench.exact.chain.unions.closed_unions`
(every closed union above a size-dependent requirement) -- spend all their time in per-node numpy
calls on small arrays. Here the same searches run compiled: an activation set is one ``uint64``
mask (layers with at most 64 experts), a node keeps the ids of its alive sets and their missing
counts in depth-indexed buffers, and the search is an explicit stack of depth <= E (every branch
fixes one more expert). One kernel, :func:`dfs_run`, runs both: they share the node loop and
differ in what a node records and how it is pruned.

The kernel is *resumable*: all search state lives in a :class:`DfsState` owned by the caller,
and a call returns after ``stop_at`` nodes (so the caller can check its deadline, which numba
cannot read) or, for closed_unions, whenever a closed union qualifies (a generator in two
halves). The bounds, pruning rules and branching order are those of the Python reference, whose
docstrings argue their validity; ``tests/test_certify_kernel.py`` checks the kernels against it.

Without numba (``HAVE_NUMBA`` false) the callers use the Python reference.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

try:  # pragma: no cover - depends on the environment
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    numba = None
    HAVE_NUMBA = False

#: Largest number of experts per layer the bitset kernels handle.
MAX_EXPERTS = 64

#: Return codes of the kernels.
DONE, YIELD, PAUSED = 0, 1, 2


def _jit(fn):  # pragma: no cover - trivial
    return numba.njit(cache=True, nogil=True)(fn) if HAVE_NUMBA else fn


@dataclass(frozen=True)
class SetBits:
    """Bitset view of one layer's activation sets (computed once, reused by every search).

    Attributes
    ----------
    masks : ndarray of uint64, shape (M,)
    idx : ndarray of int64, shape (M, k)
        Member ids padded with -1.
    cnt : ndarray of int64, shape (M,)
        Set sizes.
    e : int
        Number of experts.
    """

    masks: np.ndarray
    idx: np.ndarray
    cnt: np.ndarray
    e: int

    @classmethod
    def of(cls, members: np.ndarray) -> SetBits:
        """Bitsets of a (M, E) boolean membership matrix (E <= :data:`MAX_EXPERTS`)."""
        a = np.asarray(members, dtype=bool)
        return cls(set_masks(a), set_index(a), a.sum(axis=1).astype(np.int64), int(a.shape[1]))


def usable(members: np.ndarray) -> bool:
    """True when the compiled kernels can search this layer."""
    return HAVE_NUMBA and np.asarray(members).shape[1] <= MAX_EXPERTS


def bool_to_mask(x: np.ndarray) -> np.uint64:
    """uint64 mask of a boolean expert vector (at most 64 experts)."""
    return np.uint64(sum(1 << int(i) for i in np.flatnonzero(x)))


def set_masks(members: np.ndarray) -> np.ndarray:
    """One uint64 bitmask per activation set (bit e set when expert e is a member)."""
    a = np.asarray(members, dtype=bool)
    if a.shape[1] > MAX_EXPERTS:
        raise ValueError(f"bitset kernels handle at most {MAX_EXPERTS} experts per layer")
    bits = np.left_shift(np.uint64(1), np.arange(a.shape[1], dtype=np.uint64))
    return (a.astype(np.uint64) * bits[None, :]).sum(axis=1, dtype=np.uint64)


def set_index(members: np.ndarray) -> np.ndarray:
    """Member ids of every activation set, padded with -1: shape (M, max set size)."""
    a = np.asarray(members, dtype=bool)
    k = max(int(a.sum(axis=1).max(initial=0)), 1)
    idx = np.full((a.shape[0], k), -1, dtype=np.int64)
    rows, cols = np.nonzero(a)
    pos = np.arange(rows.size) - np.searchsorted(rows, rows)
    idx[rows, pos] = cols
    return idx


def mask_to_bool(mask: int, e: int) -> np.ndarray:
    """Boolean expert vector of a uint64 mask."""
    return ((np.uint64(mask) >> np.arange(e, dtype=np.uint64)) & np.uint64(1)).astype(bool)


@dataclass
class DfsState:
    """Resumable depth-first search state (buffers indexed by depth).

    Attributes
    ----------
    alive, cnt : ndarray, shape (E + 2, M)
        Ids of the alive sets at each depth and their missing counts.
    n_alive : ndarray, shape (E + 2,)
    inside, out, covered : ndarray of uint64, shape (E + 2,)
        Included / excluded experts, union of the covered sets.
    val : ndarray, shape (E + 2,)
        Covered mass.
    size, phase, branch : ndarray of int64, shape (E + 2,)
        Experts included; phase 0 fresh / 1 include child explored / 2 both explored / 3 yielded /
        4 fresh exclude child (its subset was already reported by its parent); the branching expert.
    ints : ndarray of int64, shape (3,)
        depth, nodes so far, stop after this many nodes.
    best : ndarray of float64, shape (1,)
        Incumbent value (max_coverage only).
    best_mask : ndarray of uint64, shape (1,)
        Incumbent expert mask (max_coverage only).
    """

    alive: np.ndarray
    cnt: np.ndarray
    n_alive: np.ndarray
    inside: np.ndarray
    out: np.ndarray
    covered: np.ndarray
    val: np.ndarray
    size: np.ndarray
    phase: np.ndarray
    branch: np.ndarray
    ints: np.ndarray
    best: np.ndarray
    best_mask: np.ndarray

    @classmethod
    def root(cls, cnt0: np.ndarray, probs: np.ndarray, e: int, bmax: int, best: float) -> DfsState:
        """The root node: sets needing 1..bmax experts alive, empty sets already covered.

        Parameters
        ----------
        cnt0
            Size of every activation set.
        probs
            Their probabilities.
        e
            Number of experts.
        bmax
            Largest number of experts the search may include.
        best
            Incumbent value (max_coverage).
        """
        d, m = e + 2, max(len(cnt0), 1)
        st = cls(
            alive=np.empty((d, m), dtype=np.int64),
            cnt=np.empty((d, m), dtype=np.int64),
            n_alive=np.zeros(d, dtype=np.int64),
            inside=np.zeros(d, dtype=np.uint64),
            out=np.zeros(d, dtype=np.uint64),
            covered=np.zeros(d, dtype=np.uint64),
            val=np.zeros(d),
            size=np.zeros(d, dtype=np.int64),
            phase=np.zeros(d, dtype=np.int64),
            branch=np.zeros(d, dtype=np.int64),
            ints=np.zeros(3, dtype=np.int64),
            best=np.array([best]),
            best_mask=np.zeros(1, dtype=np.uint64),
        )
        ids = np.flatnonzero((cnt0 > 0) & (cnt0 <= bmax))
        st.alive[0, : ids.size] = ids
        st.cnt[0, : ids.size] = cnt0[ids]
        st.n_alive[0] = ids.size
        st.val[0] = float(np.asarray(probs)[cnt0 == 0].sum())
        return st

    def args(self) -> tuple:
        """The buffers in kernel argument order (the order of the fields)."""
        return tuple(getattr(self, f.name) for f in fields(self))


@_jit
def _spread(idx, p, alive, cnt, n, inside, e, h):  # pragma: no cover - compiled
    """h[e] = sum over alive S with e missing of p(S) / c_S (see sets.spread_bound)."""
    for i in range(e):
        h[i] = 0.0
    for k in range(n):
        s = alive[k]
        w = p[s] / cnt[k]
        for j in range(idx.shape[1]):
            i = idx[s, j]
            if i < 0:
                break
            if not (inside >> np.uint64(i)) & np.uint64(1):
                h[i] += w


@_jit
def _top_sums(h, e, r, tmp, out):  # pragma: no cover - compiled
    """out[s] = sum of the s largest h (s = 0..r); returns the argmax of h (-1 when h <= 0)."""
    g = -1
    hg = 0.0
    for i in range(e):
        tmp[i] = h[i]
        if h[i] > hg:
            hg = h[i]
            g = i
    srt = np.sort(tmp[:e])
    out[0] = 0.0
    acc = 0.0
    for s in range(1, r + 1):
        if s <= e:
            acc += srt[e - s]
        out[s] = acc
    return g


@_jit
def _children(
    masks, p, alive, cnt, n_alive, inside, out, covered, val, size, d, g, r, include, track
):  # pragma: no cover
    """Fill depth d + 1 with the include (or exclude) child of the node at depth d on expert g."""
    bit = np.uint64(1) << np.uint64(g)
    n = n_alive[d]
    k2 = 0
    if include:
        add = 0.0
        cov = covered[d]
        for k in range(n):
            s = alive[d, k]
            c2 = cnt[d, k]
            if masks[s] & bit:
                c2 -= 1
            if c2 == 0:
                add += p[s]
                if track:
                    cov |= masks[s]
            elif c2 <= r - 1:
                alive[d + 1, k2] = s
                cnt[d + 1, k2] = c2
                k2 += 1
        inside[d + 1] = inside[d] | bit
        out[d + 1] = out[d]
        covered[d + 1] = cov
        val[d + 1] = val[d] + add
        size[d + 1] = size[d] + 1
    else:
        for k in range(n):
            s = alive[d, k]
            if not (masks[s] & bit):
                alive[d + 1, k2] = s
                cnt[d + 1, k2] = cnt[d, k]
                k2 += 1
        inside[d + 1] = inside[d]
        out[d + 1] = out[d] | bit
        covered[d + 1] = covered[d]
        val[d + 1] = val[d]
        size[d + 1] = size[d]
    n_alive[d + 1] = k2


@_jit
def dfs_run(
    masks, idx, p, e, b, unions, need, margin, cut, slack, tol,
    alive, cnt, n_alive, inside, out, covered, val, size, phase, branch, ints, best, best_mask,
):  # pragma: no cover - compiled  # fmt: skip
    """Run the max_coverage search (``unions`` false) or the closed_unions enumeration (true, up to
    ``b`` experts) until it ends (DONE), ``ints[2]`` nodes were used (PAUSED; the node at ``ints[0]``
    has not been evaluated yet, phase 0 or 4) or, for closed_unions, at the next qualifying closed
    union (YIELD: it is the node at depth ``ints[0]``).

    max_coverage prunes a node when val + spread bound < max(best + margin, cut - slack) (quantum
    and decision-mode pruning as in sets.max_coverage). In closed_unions a node qualifies when
    val >= need[size] - slack and its covered union equals its included experts; it is pruned when
    an included expert lies in no covered or alive set, or when no reachable size s has
    val + top-(s - size) spread >= need[s] - slack.
    """
    h = np.zeros(e)
    tmp = np.zeros(e)
    top = np.zeros(b + 2)
    d = ints[0]
    nodes = ints[1]
    while d >= 0:
        ph = phase[d]
        if ph == 0 or ph == 3 or ph == 4:
            if ph != 3:
                if nodes >= ints[2]:
                    ints[0] = d
                    ints[1] = nodes
                    return 2
                nodes += 1
                if not unions and val[d] > best[0] + tol:
                    best[0] = val[d]
                    best_mask[0] = inside[d]
                # an exclude child has its parent's subset, which was already reported
                if unions and ph == 0 and val[d] >= need[size[d]] - slack and covered[d] == inside[d]:
                    phase[d] = 3
                    ints[0] = d
                    ints[1] = nodes
                    return 1
            r = b - size[d]
            n = n_alive[d]
            if r == 0 or n == 0:
                d -= 1
                continue
            if unions:
                reach = covered[d]
                for k in range(n):
                    reach |= masks[alive[d, k]]
                if inside[d] & ~reach:
                    d -= 1
                    continue
            _spread(idx, p, alive[d], cnt[d], n, inside[d], e, h)
            g = _top_sums(h, e, r, tmp, top)
            if unions:
                ok = False
                for s in range(1, r + 1):
                    if val[d] + top[s] >= need[size[d] + s] - slack:
                        ok = True
                        break
            else:
                floor = best[0] + margin
                if cut - slack > floor:
                    floor = cut - slack
                ok = val[d] + top[r] >= floor
            if not ok or g < 0:
                d -= 1
                continue
            branch[d] = g
            phase[d] = 1
            _children(masks, p, alive, cnt, n_alive, inside, out, covered, val, size, d, g, r, True, unions)
            d += 1
            phase[d] = 0
        elif ph == 1:
            phase[d] = 2
            _children(masks, p, alive, cnt, n_alive, inside, out, covered, val, size, d, branch[d], 0, False, unions)
            d += 1
            phase[d] = 4 if unions else 0
        else:
            d -= 1
    ints[0] = d
    ints[1] = nodes
    return 0


@_jit
def cover_open_bound(
    masks, idx, p, e, b,
    alive, cnt, n_alive, inside, out, covered, val, size, phase, branch, ints, best, best_mask,
):  # pragma: no cover - compiled  # fmt: skip
    """Largest bound over the open nodes of a PAUSED max_coverage search (a proven bound on
    everything not yet searched): the unevaluated node at the top of the stack and every pending
    exclude child (its own spread bound, computed from its parent's alive sets without the sets
    through the branching expert). Takes the whole :class:`DfsState` (``DfsState.args``)."""
    d = ints[0]
    hi = -np.inf
    if d < 0:
        return hi
    h = np.zeros(e)
    tmp = np.zeros(e)
    top = np.zeros(b + 2)
    r = b - size[d]
    if r > 0 and n_alive[d] > 0 and phase[d] == 0:
        _spread(idx, p, alive[d], cnt[d], n_alive[d], inside[d], e, h)
        _top_sums(h, e, r, tmp, top)
        hi = val[d] + top[r]
    else:
        hi = val[d]
    sub = np.empty(alive.shape[1], dtype=np.int64)
    subc = np.empty(alive.shape[1], dtype=np.int64)
    for dd in range(d):
        if phase[dd] != 1:
            continue
        bit = np.uint64(1) << np.uint64(branch[dd])
        k2 = 0
        for k in range(n_alive[dd]):
            s = alive[dd, k]
            if not (masks[s] & bit):
                sub[k2] = s
                subc[k2] = cnt[dd, k]
                k2 += 1
        rr = b - size[dd]
        bound = val[dd]
        if rr > 0 and k2 > 0:
            _spread(idx, p, sub, subc, k2, inside[dd], e, h)
            _top_sums(h, e, rr, tmp, top)
            bound = val[dd] + top[rr]
        if bound > hi:
            hi = bound
    return hi


@_jit
def _bits(x):  # pragma: no cover - compiled
    c = 0
    while x != 0:
        x &= x - np.uint64(1)
        c += 1
    return c


@_jit
def greedy_run(masks, p, bmax, lo, wit):  # pragma: no cover - compiled
    """sets.greedy_chain on bitsets: repeatedly complete the set whose completion covers the most
    new mass per added expert. Fills lo[0..bmax] and the witness mask wit[b] of every budget."""
    m = masks.shape[0]
    miss = np.empty(m, dtype=np.uint64)
    cnt = np.empty(m, dtype=np.int64)
    cur = np.uint64(0)
    size = 0
    val = 0.0
    for b in range(bmax + 1):
        lo[b] = 0.0
        wit[b] = cur
    while True:
        for i in range(m):
            miss[i] = masks[i] & ~cur
            cnt[i] = _bits(miss[i])
        best_ratio = -1.0
        best_gain = 0.0
        best_i = -1
        for c in range(m):
            if cnt[c] == 0 or cnt[c] > bmax - size:
                continue
            gain = 0.0
            mc = ~miss[c]
            for t in range(m):
                if cnt[t] > 0 and (miss[t] & mc) == 0:
                    gain += p[t]
            ratio = gain / cnt[c]
            if ratio > best_ratio:
                best_ratio = ratio
                best_gain = gain
                best_i = c
        if best_i < 0:  # no set can be completed within the budget (every ratio is >= 0)
            break
        cur |= masks[best_i]
        size = _bits(cur)
        val += best_gain
        for b in range(size, bmax + 1):
            lo[b] = val
            wit[b] = cur


@_jit
def combine_run(values, lengths, budget, tol, f, choices):  # pragma: no cover - compiled
    """sets.combine: the (max,+) DP over layers; values[l, b] for b < lengths[l]. Fills f (the
    final table) and choices[l, B] (the b of layer l in the best solution with budget B); the
    smallest b wins ties within tol, as in the reference."""
    nl = values.shape[0]
    g = np.empty(budget + 1)
    for bb in range(budget + 1):
        f[bb] = 0.0
    for layer in range(nl):
        nb = min(lengths[layer] - 1, budget)
        for bb in range(budget + 1):
            best = -np.inf
            arg = 0
            for b in range(min(nb, bb) + 1):
                c = f[bb - b] + values[layer, b]
                if c > best + tol:
                    best = c
                    arg = b
            g[bb] = best
            choices[layer, bb] = arg
        for bb in range(budget + 1):
            f[bb] = g[bb]
