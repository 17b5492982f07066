"""Enumeration of closed unions of activation sets (one layer, and a whole level across layers).

Used by the exact search over nested levels (:mod:`moebench.exact.chain.search`): every top-level
solution that could still beat the incumbent is produced once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from moebench.exact.chain import kernel as kern
from moebench.exact.chain.coverage import KERNEL_CHUNK, TOL, quantum


class Timeout(Exception):
    """The deadline passed during the exact search."""


def expand_units(values: np.ndarray, unit: int) -> np.ndarray:
    """A per-expert profile re-indexed by capacity units: out[u] = values[u // unit]."""
    v = np.asarray(values, dtype=np.float64)
    return v if unit == 1 else np.repeat(v, unit)[: (len(v) - 1) * unit + 1]


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


def quantized_need(p: np.ndarray, need: np.ndarray) -> tuple[np.ndarray, float]:
    """The requirements ``need`` and the slack to compare float sums of weights ``p`` against them.

    When the weights are multiples of a quantum q (:func:`quantum`), every value is one: each
    requirement is rounded up to a multiple (a requirement within 1e-6 q above a multiple counts
    as that multiple, which only admits more) and sums are compared with slack q/2; else ``TOL``.
    """
    need = np.asarray(need, dtype=np.float64)
    q = quantum(p)
    if q <= 0:
        return need, TOL
    finite = np.isfinite(need)
    return np.where(finite, q * np.ceil(np.where(finite, need, 0.0) / q - 1e-6), need), 0.5 * q


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
    need, slack = quantized_need(p, need)
    cnt0 = a.sum(axis=1)
    alive0 = np.flatnonzero((cnt0 > 0) & (cnt0 <= bmax))
    # node: (inside, out, covered union, alive ids, missing counts, mass, size, new subset?); the
    # masks are never changed in place (a child gets copies), so the root's three may be one array
    none = np.zeros(e, dtype=bool)
    stack = [(none, none, none, alive0, cnt0[alive0], float(p[cnt0 == 0].sum()), 0, True)]
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
    by the compiled kernel :func:`moebench.exact.chain.kernel.dfs_run` when numba is installed
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
    need, slack = quantized_need(p, need)
    st = kern.DfsState.root(bits.cnt, p, e, bmax, 0.0)
    args = st.args()
    while True:
        st.ints[2] = int(st.ints[1]) + KERNEL_CHUNK
        code = kern.dfs_run(bits.masks, bits.idx, p, e, bmax, True, need, 0.0, 0.0, slack, 0.0, *args)
        if code == kern.DONE:
            return
        if code == kern.YIELD:
            d = int(st.ints[0])
            yield kern.mask_to_bool(st.inside[d], e), int(st.size[d]), float(st.val[d])
        if deadline is not None and time.monotonic() > deadline:
            raise Timeout


def level_solutions(
    members: list[np.ndarray],
    probs: list[np.ndarray],
    weights: np.ndarray,
    budget: int,
    hi_values: list[np.ndarray],
    threshold: list[float],
    deadline: float | None,
    units: np.ndarray | None = None,
) -> Iterator[tuple[list[np.ndarray], float]]:
    """Every per-layer tuple of closed unions with sum_l w_l f_l(U_l) >= threshold[0] and total size
    sum_l units[l] |U_l| <= budget (``units``: size of one expert of layer l in capacity units,
    default 1). The caller may raise threshold[0] between yields (its incumbent improved); the
    enumeration then prunes with the new value from the next layer search on."""
    nl = len(members)
    units = np.ones(nl, dtype=np.int64) if units is None else np.asarray(units, dtype=np.int64)
    suffix = suffix_tables([expand_units(v, int(s)) for v, s in zip(hi_values, units)], budget)
    bits = [kern.SetBits.of(a) if kern.usable(a) else None for a in members]
    chosen: list[np.ndarray] = [None] * nl  # type: ignore[list-item]

    def rec(layer: int, left: int, acc: float) -> Iterator[tuple[list[np.ndarray], float]]:
        thr = threshold[0]
        if layer == nl:
            if acc >= thr - TOL * max(1.0, abs(thr)):
                yield list(chosen), acc
            return
        w = weights[layer]
        s = int(units[layer])
        bmax = min(left // s, members[layer].shape[1])
        sizes = np.arange(bmax + 1)
        rest = suffix[layer + 1][left - s * sizes]
        if w > 0:
            need = (thr - acc - rest) / w
        else:
            need = np.where(sizes == 0, -np.inf, np.inf)  # a zero-weight layer keeps nothing here
        for u, size, val in closed_unions(members[layer], probs[layer], need, deadline, bits=bits[layer]):
            chosen[layer] = u
            yield from rec(layer + 1, left - s * size, acc + w * val)

    yield from rec(0, budget, 0.0)
