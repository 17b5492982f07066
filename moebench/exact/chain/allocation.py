"""Level sizes per layer that respect the nesting: a guide for the nested heuristics.

Every nested chain has sizes b[l, 0] <= b[l, 1] <= ... per layer. The top-down and bottom-up
heuristics of :mod:`moebench.exact.chain.search` choose each level's allocation on its own and
break ties blindly: when every whole layer covers all of its sets, the top level may fill layer 0
while the lower levels, inside it, lose what they would have had in layer 3 (measured on the
sweeps' ``N4`` / ``N8`` points: 24.14 instead of 24.75 ms). :func:`monotone_sizes` solves

    max sum_{l, k} values[l][k][b[l, k]]  s.t.  sum_l units[l] b[l, k] <= budgets[k],
                                                b[l, k] <= b[l, k + 1],

a small multiple-choice MILP (HiGHS), for the sizes the chains are then built with. It is a
heuristic guide only: nothing here is a bound.
"""

from __future__ import annotations

import numpy as np

from moebench.exact.chain.lp import quiet_highs


def monotone_sizes(
    values: list[list[np.ndarray]], budgets: list[int], units: np.ndarray, time_limit: float
) -> np.ndarray | None:
    """Sizes b[l, k] maximizing sum values[l][k][b] under per-level budgets and b non-decreasing in k.

    Parameters
    ----------
    values
        values[l][k][b]: (lower) value of b experts of layer l at the k-th level.
    budgets
        Budget of each level, in capacity units.
    units
        Capacity units taken by one expert of each layer.
    time_limit
        Seconds for HiGHS.

    Returns
    -------
    ndarray of int, shape (L, K), or None when HiGHS is missing or finds no solution in time.
    """
    try:
        import highspy
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    nl, nk = len(values), len(budgets)
    col: dict[tuple[int, int, int], int] = {}
    cost: list[float] = []
    for layer in range(nl):
        for k in range(nk):
            for b, v in enumerate(values[layer][k]):
                if units[layer] * b <= budgets[k] and np.isfinite(v):
                    col[layer, k, b] = len(cost)
                    cost.append(float(v))
    n = len(cost)
    h = quiet_highs()
    h.setOptionValue("time_limit", float(max(0.1, time_limit)))
    h.setOptionValue("mip_rel_gap", 1e-6)
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.array(cost))
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    inf = highspy.kHighsInf

    def row(idx: list[int], val: list[float], lo: float, hi: float) -> None:
        h.addRow(lo, hi, len(idx), np.array(idx, dtype=np.int32), np.array(val, dtype=np.float64))

    for layer in range(nl):
        per = [[(b, c) for (ly, k, b), c in col.items() if ly == layer and k == kk] for kk in range(nk)]
        for k in range(nk):
            row([c for _, c in per[k]], [1.0] * len(per[k]), 1.0, 1.0)
        for k in range(nk - 1):  # sum_b b z[l, k, b] <= sum_b b z[l, k + 1, b]
            row(
                [c for _, c in per[k]] + [c for _, c in per[k + 1]],
                [float(b) for b, _ in per[k]] + [-float(b) for b, _ in per[k + 1]],
                -inf,
                0.0,
            )
    for k in range(nk):
        items = [(float(units[ly] * b), c) for (ly, kk, b), c in col.items() if kk == k]
        row([c for _, c in items], [v for v, _ in items], -inf, float(budgets[k]))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # no feasible point
        return None
    x = np.asarray(h.getSolution().col_value)
    out = np.zeros((nl, nk), dtype=np.int64)
    for (layer, k, b), c in col.items():
        if x[c] > 0.5:
            out[layer, k] = b
    return out
