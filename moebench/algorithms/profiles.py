"""Per-layer value profiles of the SGD subproblems (SPEC section 4).

A subproblem *promotes* some candidate experts of every layer from their current latency
``cur`` to a new, lower latency ``new`` (e.g. from the cloud or a slower server to the servers
of the current level). The gain of layer l for a promoted set A of its candidates is

    g_l(A) = sum_S pi(S) * (max_{e in S} cur(e) - max_{e in S} (new(e) if e in A else cur(e))),

and the subproblem is the multiple-choice knapsack ``max sum_l g_l(A_l)`` subject to
``sum_l size(A_l) <= B``. A *profile* V_l(b) = best g_l with size at most b is stored as its
breakpoints: weights (MB, ascending, starting at 0) and values (strictly increasing, starting at
0), each with the promoted set that reaches it.

Two kinds of profile:

``exact``
    Every subset of the layer's candidates (used when there are at most ``exact_max`` of them).
    g_l is computed for all 2^E subsets at once: every activation set's gain, as a function of
    which of its (at most K) members are promoted, is Möbius-inverted over its K-cube, the
    coefficients are scattered to E-bit masks and a zeta transform (sum over subsets) gives g_l.
    Cost O(M K 2^K + E 2^E).
``chain``
    A co-activation-aware greedy chain: starting from nothing, repeatedly add the block with the
    best gain per MB, where a block is one candidate expert or the missing part of an activation
    set. Single-expert gains are exact for all candidates at once (top-two trick); set blocks are
    ranked by a cheap estimate (the set's own completion gain plus its missing members' single
    gains) and the best ``shortlist`` of them are evaluated exactly. Profile values are the exact
    g_l of the chain's prefixes (prefix maxima), so only the choice of the chain is heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Default largest number of candidates of a layer enumerated exactly.
EXACT_MAX = 16
#: Largest M * 2^K * K (sets x sub-masks x positions) the exact enumeration may touch.
EXACT_WORK = 30_000_000
#: Set blocks evaluated exactly per chain step.
SHORTLIST = 8
_TOL = 1e-12


@dataclass
class LayerTask:
    """One layer of a subproblem, reduced to the activation sets whose latency can change.

    Attributes
    ----------
    cand : ndarray, shape (E_c,)
        Global ids of the layer's candidate experts.
    size : ndarray, shape (E_c,)
        Their sizes in MB.
    member : ndarray, shape (M, K)
        For every kept activation set and position, the local candidate index of the member,
        or -1 when the member is not a candidate.
    cur : ndarray, shape (M, K)
        Current latency of every member.
    new : ndarray, shape (M, K)
        Latency of every member if promoted (equal to ``cur`` for non-candidates).
    probs : ndarray, shape (M,)
        Probabilities of the kept sets.
    """

    cand: np.ndarray
    size: np.ndarray
    member: np.ndarray
    cur: np.ndarray
    new: np.ndarray
    probs: np.ndarray

    @property
    def n_cand(self) -> int:
        """Number of candidates E_c."""
        return len(self.cand)


def make_layer_task(
    sets: np.ndarray, probs: np.ndarray, cur: np.ndarray, new: np.ndarray, cand: np.ndarray, size: np.ndarray
) -> LayerTask:
    """Build a :class:`LayerTask`.

    Parameters
    ----------
    sets
        Activation sets of the layer as global ids, shape (M, K).
    probs
        Their probabilities, shape (M,).
    cur
        Current latency of every global expert, shape (G,).
    new
        Latency of every global expert if promoted, shape (G,); only read for candidates,
        which must satisfy ``new <= cur``.
    cand
        Global ids of the candidates (sorted).
    size
        Size in MB of every global expert, shape (G,).
    """
    cand = np.asarray(cand, np.int64)
    local = np.full(int(max(sets.max(initial=0), cand.max(initial=0))) + 1, -1, np.int64)
    local[cand] = np.arange(len(cand))
    member = local[sets]
    c = cur[sets]
    n = np.where(member >= 0, np.minimum(new[sets], c), c)
    # a set whose latency cannot drop even with all its candidates promoted is irrelevant
    keep = (c.max(axis=1) - n.max(axis=1) > 0) & (probs > 0)
    return LayerTask(cand, np.asarray(size, float)[cand], member[keep], c[keep], n[keep], np.asarray(probs)[keep])


@dataclass
class Profile:
    """Breakpoints of V_l(b) and the promoted sets reaching them.

    Attributes
    ----------
    weights : ndarray
        MB of each breakpoint, ascending, ``weights[0] == 0``.
    values : ndarray
        g_l at each breakpoint, strictly increasing, ``values[0] == 0``.
    kind : str
        ``"exact"``, ``"chain"`` or ``"empty"`` (no candidate can gain anything).
    masks : ndarray or None
        ``exact``: bit mask over the candidates of each breakpoint.
    order, prefix : ndarray or None
        ``chain``: candidates in chain order and the prefix length of each breakpoint.
    """

    weights: np.ndarray
    values: np.ndarray
    kind: str
    cand: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    masks: np.ndarray | None = None
    order: np.ndarray | None = None
    prefix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.weights)

    def members(self, k: int) -> np.ndarray:
        """Global ids of the experts promoted at breakpoint ``k``."""
        if self.kind == "exact":
            m = int(self.masks[k])
            bits = np.array([i for i in range(len(self.cand)) if (m >> i) & 1], np.int64)
            return self.cand[bits] if len(bits) else np.zeros(0, np.int64)
        if self.kind == "chain":
            return self.cand[self.order[: self.prefix[k]]]
        return np.zeros(0, np.int64)


def empty_profile() -> Profile:
    """The profile of a layer with nothing to gain."""
    return Profile(np.zeros(1), np.zeros(1), "empty")


def pareto(weights: np.ndarray, values: np.ndarray, tol: float = _TOL) -> np.ndarray:
    """Indices of the breakpoints of ``max value with weight <= b``: ascending weight, strictly increasing value.

    Ties in weight keep the largest value; among equal values the lightest point is kept. A point
    must beat every lighter one by more than ``tol`` relative (absolute below 1) to be kept.
    """
    order = np.lexsort((-values, weights))
    v = values[order]
    best_before = np.concatenate([[-np.inf], np.maximum.accumulate(v)[:-1]])
    return order[v > best_before + tol * np.maximum(1.0, np.abs(v))]


def exact_values(task: LayerTask) -> np.ndarray:
    """g_l(A) for every subset A of the candidates, indexed by bit mask; shape (2^E_c,)."""
    e = task.n_cand
    h = np.zeros(1 << e)
    m, k = task.member.shape
    if m == 0:
        return h
    # gain of every set for every sub-mask of its K positions
    sub = np.arange(1 << k)
    bits = ((sub[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)  # (2^K, K)
    is_c = task.member >= 0
    promoted = bits[None, :, :] & is_c[:, None, :]  # (M, 2^K, K)
    after = np.where(promoted, task.new[:, None, :], task.cur[:, None, :]).max(axis=2)
    mu = task.probs[:, None] * (task.cur.max(axis=1)[:, None] - after)  # (M, 2^K)
    # Möbius inversion over the K-cube: mu[S] = sum_{T subset S} (-1)^{|S-T|} g(T)
    for i in range(k):
        view = mu.reshape(m, -1, 2, 1 << i)
        view[:, :, 1, :] -= view[:, :, 0, :]
    # scatter to E-bit masks; positions of non-candidates have zero coefficients
    code = (bits[None, :, :] * np.where(is_c, np.left_shift(1, np.maximum(task.member, 0)), 0)[:, None, :]).sum(axis=2)
    nz = mu != 0
    h += np.bincount(code[nz], weights=mu[nz], minlength=1 << e)
    # zeta transform: h[A] = sum_{T subset A} coef[T]
    for i in range(e):
        view = h.reshape(-1, 2, 1 << i)
        view[:, 1, :] += view[:, 0, :]
    return h


def subset_sizes(size: np.ndarray) -> np.ndarray:
    """Total size of every subset, indexed by bit mask; shape (2^E,)."""
    out = np.zeros(1)
    for s in size:
        out = np.concatenate([out, out + s])
    return out


def exact_profile(task: LayerTask, max_weight: float | None = None) -> Profile:
    """The exact profile by enumerating every subset of the candidates."""
    if task.n_cand == 0 or len(task.probs) == 0:
        return empty_profile()
    h = exact_values(task)
    w = subset_sizes(task.size)
    if max_weight is not None:
        ok = np.flatnonzero(w <= max_weight * (1 + 1e-12) + 1e-12)
        h, w, masks = h[ok], w[ok], ok
    else:
        masks = np.arange(len(h))
    idx = pareto(w, h)
    idx = idx[h[idx] > 0] if len(idx) else idx
    return Profile(
        np.concatenate([[0.0], w[idx]]),
        np.concatenate([[0.0], h[idx]]),
        "exact",
        cand=task.cand,
        masks=np.concatenate([[0], masks[idx]]).astype(np.int64),
    )


def chain_profile(task: LayerTask, max_weight: float | None = None, shortlist: int = SHORTLIST) -> Profile:
    """The co-activation-aware greedy chain profile (see the module docstring)."""
    e = task.n_cand
    if e == 0 or len(task.probs) == 0:
        return empty_profile()
    limit = np.inf if max_weight is None else max_weight * (1 + 1e-12) + 1e-12
    size = np.maximum(task.size, 1e-12)  # a zero-size expert is always worth its gain
    # (K, M) layout: reductions over the K members of a set are then fast elementwise passes
    member, probs = task.member.T.copy(), task.probs
    cur = task.cur.T.copy()  # latency of every member under the current chain prefix
    target = task.new.T.copy()
    chosen = np.zeros(e, bool)
    used = 0.0
    order: list[int] = []
    weights, prefix = [0.0], [0]
    m0 = np.maximum(member, 0)
    valid = member >= 0
    n_sets = len(probs)
    cols = np.arange(n_sets)
    k_all = member.shape[0]
    # 2-D gathers go through flat np.take: much faster than fancy indexing on small arrays
    while True:
        open_ = valid & (target < cur)  # members still improvable (never chosen ones)
        live = open_.any(axis=0)
        if live.sum() < 0.8 * n_sets:  # sets that cannot change any more are dropped for good
            member, m0, valid, cur, target, open_ = (a[:, live] for a in (member, m0, valid, cur, target, open_))
            probs = probs[live]
            n_sets = len(probs)
            cols = np.arange(n_sets)
        if n_sets == 0:
            break
        newp = np.where(open_, target, cur)  # latency of each member if promoted now
        # top-two per set: lowering one member changes the set's latency to max(others, its new
        # value), so only a unique maximal member can gain alone
        top1 = cur.max(axis=0)
        at_top = cur == top1[None, :]
        first = np.zeros(n_sets, np.int64)
        for k in range(k_all - 1, -1, -1):
            first = np.where(at_top[k], k, first)
        flat = first * n_sets + cols
        n_top = at_top.sum(axis=0)
        top2 = np.where(n_top >= 2, top1, np.where(at_top, -np.inf, cur).max(axis=0))
        rep = m0.ravel().take(flat)  # the first maximal member of every set
        alone = (n_top == 1) & open_.ravel().take(flat)
        single = np.bincount(
            rep[alone],
            weights=probs[alone] * (top1[alone] - np.maximum(top2[alone], newp.ravel().take(flat)[alone])),
            minlength=e,
        )
        room = limit - used
        fits = (~chosen) & (task.size <= room)
        best_ratio, best_block = 0.0, None
        if fits.any():
            r = np.where(fits, single / size, -np.inf)
            j = int(np.argmax(r))
            if single[j] > _TOL:
                best_ratio, best_block = float(r[j]), np.array([j])
        # set blocks: the missing (open) candidates of each activation set
        multi = np.flatnonzero(open_.sum(axis=0) >= 2)
        if len(multi):
            om = open_.take(multi, axis=1)
            mm = m0.take(multi, axis=1)
            bsize = np.where(om, size.take(mm), 0.0).sum(axis=0)
            ok = bsize <= room
            multi, bsize, om, mm = multi[ok], bsize[ok], om[:, ok], mm[:, ok]
        if len(multi):
            own = probs[multi] * (top1[multi] - newp.take(multi, axis=1).max(axis=0))
            est = own + np.where(om, single.take(mm), 0.0).sum(axis=0)
            top = np.argsort(-(est / bsize), kind="stable")[:shortlist]
            cands = multi[top]
            inb = np.zeros((len(cands), e), bool)
            kk, rr = np.nonzero(om[:, top])
            inb[rr, mm[kk, top[rr]]] = True
            # exact gains: a set can only gain if every member at its maximum is promoted, so only
            # sets whose first maximal member lies in the block need evaluating
            can = ~(at_top & ~open_).any(axis=0)
            bi, si = np.nonzero(inb.take(rep, axis=1) & can[None, :])
            prom = inb.ravel().take(bi[None, :] * e + m0.take(si, axis=1)) & open_.take(si, axis=1)
            after = np.where(prom, newp.take(si, axis=1), cur.take(si, axis=1)).max(axis=0)
            gains = np.bincount(bi, weights=probs[si] * (top1[si] - after), minlength=len(cands))
            ratios = gains / bsize[top]
            j = int(np.argmax(ratios))
            if gains[j] > _TOL and ratios[j] > best_ratio * (1 + 1e-12):
                best_block = np.flatnonzero(inb[j])
        if best_block is None:
            break
        chosen[best_block] = True
        order.extend(int(b) for b in best_block)
        used += float(task.size[best_block].sum())
        cur = np.where(valid & chosen.take(m0), np.minimum(cur, target), cur)
        weights.append(used)
        prefix.append(len(order))
    member, probs, is_c = task.member, task.probs, task.member >= 0
    w = np.array(weights)
    # exact g_l of every prefix in one pass (the running sum of step gains accumulates rounding)
    pos = np.full(e, len(order) + 1, np.int64)
    pos[np.array(order, np.int64)] = np.arange(len(order))
    mpos = np.where(is_c, pos[np.maximum(member, 0)], len(order) + 1)
    pre = np.array(prefix, np.int64)
    after = np.where(mpos[None] < pre[:, None, None], task.new[None], task.cur[None]).max(axis=2)
    v = (task.cur.max(axis=1)[None] - after) @ probs
    v[0] = 0.0
    idx = pareto(w, v)
    return Profile(
        w[idx],
        v[idx],
        "chain",
        cand=task.cand,
        order=np.array(order, np.int64),
        prefix=np.array(prefix, np.int64)[idx],
    )


def layer_profile(task: LayerTask, max_weight: float | None = None, exact_max: int = EXACT_MAX) -> Profile:
    """Exact profile when the layer has at most ``exact_max`` candidates (and the Möbius step
    stays under :data:`EXACT_WORK`), else the greedy chain (both give the empty profile of an empty task)."""
    m, k = task.member.shape
    if task.n_cand <= exact_max and m * (1 << k) * k <= EXACT_WORK:
        return exact_profile(task, max_weight)
    return chain_profile(task, max_weight)
