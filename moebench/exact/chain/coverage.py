"""One layer, one budget: V(b) = max_{|C| <= b} f(C) by branch and bound over experts.

:func:`max_coverage` runs the compiled kernel (:mod:`moebench.exact.chain.kernel`) when numba is
installed and the layer has at most 64 experts; :func:`max_coverage_py` is the Python reference
(same bounds, pruning and branching order). docs/certify.md section 2 argues every bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from moebench.exact.chain import kernel as kern

#: Absolute tolerance on probability mass when comparing values (probabilities sum to 1 per layer).
TOL = 1e-12
#: Also use the pair-spread bound in :func:`spread_bound` (tighter, about twice the cost per node).
PAIR_BOUND = False


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


def decision_cut(q: float, threshold: float | None) -> tuple[float, float, float]:
    """(cut, below, slack) of the decision mode of :func:`max_coverage` for quantum ``q``.

    ``cut`` is the threshold (-inf without one), rounded up to a multiple of ``q``: V < cut then
    means V <= cut - q, so ``below`` is what "V < cut" proves; float sums of multiples of q sit
    within ``slack`` of them.
    """
    cut = -np.inf if threshold is None else float(threshold)
    if q > 0 and threshold is not None:
        cut = q * np.ceil(cut / q - 1e-9)
    below = cut - q + TOL if q > 0 else cut
    slack = 0.5 * q if q > 0 else TOL
    return cut, below, slack


def _start(
    p: np.ndarray, cnt0: np.ndarray, e: int, lower: float, witness: np.ndarray | None, threshold: float | None
) -> tuple:
    """``(margin, best, best_x, cut, below, slack)`` of a search: the least improvement worth a
    node, the starting incumbent (``lower`` and ``witness``, else the empty set) and the decision cut."""
    # improvements come in whole quanta when all weights are multiples of one (token counts)
    q = quantum(p)
    best_x = np.zeros(e, dtype=bool) if witness is None or lower < 0 else np.asarray(witness, dtype=bool).copy()
    best = float(p[cnt0 == 0].sum()) if lower < 0 else max(lower, 0.0)
    return max(q - TOL, TOL), best, best_x, *decision_cut(q, threshold)


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
    cnt0 = a.sum(axis=1)
    margin, best, best_x, cut, below, slack = _start(p, cnt0, e, lower, witness, threshold)
    alive0 = np.flatnonzero((cnt0 > 0) & (cnt0 <= b))
    # node: (inside mask, excluded mask, alive ids, their missing counts, covered mass, size)
    stack: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]] = [
        (np.zeros(e, dtype=bool), np.zeros(e, dtype=bool), alive0, cnt0[alive0], float(p[cnt0 == 0].sum()), 0)
    ]
    nodes = 0
    hi_open = -np.inf
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
    :func:`moebench.exact.chain.kernel.dfs_run` when numba is installed and the layer has at
    most 64 experts, else by the Python reference.

    Parameters
    ----------
    bits
        Precomputed :class:`~moebench.exact.chain.kernel.SetBits` of ``members`` (saves the
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
    cnt0 = bits.cnt
    margin, best, best_x, cut, below, slack = _start(p, cnt0, e, lower, witness, threshold)
    st = kern.DfsState.root(cnt0, p, e, b, best)
    start_best = st.best[0]
    args = st.args()
    no_need = np.zeros(1)
    while True:
        st.ints[2] = min(node_limit, int(st.ints[1]) + KERNEL_CHUNK)
        code = kern.dfs_run(bits.masks, bits.idx, p, e, b, False, no_need, margin, cut, slack, TOL, *args)
        if code == kern.DONE or st.ints[1] >= node_limit or (deadline is not None and time.monotonic() > deadline):
            break
    best = float(st.best[0])
    if best > start_best:
        best_x = kern.mask_to_bool(st.best_mask[0], e)
    floor = below if cut > best + margin else best
    if code == kern.DONE:
        return BudgetResult(best, max(floor, best), best_x, int(st.ints[1]), floor <= best + TOL)
    hi_open = kern.cover_open_bound(bits.masks, bits.idx, p, e, b, *args)
    nodes = int(st.ints[1]) + (1 if st.ints[1] >= node_limit else 0)
    return BudgetResult(best, max(best, hi_open, floor), best_x, nodes, False)
