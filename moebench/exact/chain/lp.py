"""LP relaxations used as bounds (HiGHS): the single-layer profile LP and the chain LP.

- :func:`lp_profile`: LP(b) >= V(b) for every budget b (its value is the upper concave envelope
  of the profile V), widened by :data:`LP_MARGIN` against the solver's tolerance;
- :func:`chain_lp`: the LP of the whole chain model (= the best Lagrangian bound of the prefix
  budget rows, docs/certify.md section 3b); used by tests and measurements, not by the methods.
"""

from __future__ import annotations

import time

import numpy as np

#: Safety margin added to LP values (HiGHS's optimality tolerance is 1e-7 on the objective).
LP_MARGIN = 1e-7


def quiet_highs():  # pragma: no cover - trivial
    """A silent ``highspy.Highs`` (the first one in a process prints a banner on fd 1)."""
    import os

    import highspy

    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(fd, 1)
        os.close(fd)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


def lp_profile(members: np.ndarray, probs: np.ndarray, bmax: int, deadline: float | None = None) -> np.ndarray | None:
    """LP(b) + margin >= V(b) for b = 0..bmax, or None when HiGHS is not installed.

    The LP max sum_S pi(S) y_S, y_S <= x_e (e in S), sum_e x_e <= b, 0 <= x, y <= 1 relaxes the
    single-layer problem, so LP(b) >= V(b). (Its value is the upper concave envelope of V: the
    Lagrangian of the budget row is a max-closure problem, which is integral.) One model is
    built and re-solved with the budget row changed (warm start).
    """
    try:
        import highspy
    except ImportError:
        return None
    a = np.asarray(members, dtype=bool)
    p = np.asarray(probs, dtype=np.float64)
    m, e = a.shape
    s_idx, e_idx = np.nonzero(a)
    nz = s_idx.size
    # columns: x_0..x_{E-1}, y_0..y_{M-1}; rows: y_S - x_e <= 0 for each membership, sum x <= b
    rows = np.concatenate([np.arange(nz), np.arange(nz), np.full(e, nz)])
    cols = np.concatenate([e + s_idx, e_idx, np.arange(e)])
    vals = np.concatenate([np.ones(nz), -np.ones(nz), np.ones(e)])
    order = np.lexsort((rows, cols))
    rows, cols, vals = rows[order], cols[order], vals[order]
    start = np.searchsorted(cols, np.arange(e + m + 1)).astype(np.int32)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = e + m, nz + 1
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.concatenate([np.zeros(e), p])
    lp.col_lower_ = np.zeros(e + m)
    lp.col_upper_ = np.ones(e + m)
    lp.row_lower_ = np.full(nz + 1, -highspy.kHighsInf)
    lp.row_upper_ = np.concatenate([np.zeros(nz), [0.0]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = rows.astype(np.int32)
    lp.a_matrix_.value_ = vals
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = e + m, nz + 1
    h = quiet_highs()
    h.passModel(lp)
    # budgets not solved (before the deadline, or to optimality) keep the trivial bound
    out = np.full(bmax + 1, float(p.sum()))
    for b in range(bmax + 1):
        if deadline is not None and time.monotonic() > deadline:
            break
        h.changeRowBounds(nz, -highspy.kHighsInf, float(b))
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            out[b] = h.getInfo().objective_function_value * (1 + LP_MARGIN) + LP_MARGIN
    return np.minimum(out, float(p.sum()))


def chain_lp(model, *, integral: bool = False) -> float | None:
    """LP relaxation of the chain model (docs/certify.md section 3b), or None without HiGHS.

    max sum_{l,j} w[l, j] sum_S pi_l(S) y[l, S, j]  s.t.  y[l, S, j] <= x[l, e, j] (e in S),
    x[l, e, j] <= x[l, e, j'] (consecutive levels j < j'), sum_{l, e} x[l, e, j] <= P_j,
    0 <= x, y <= 1, over the levels with positive weight. By Geoffrion's theorem its value is
    the Lagrangian dual of the prefix budget rows (the relaxed problem is a max-closure problem
    with an integral LP), so no Lagrangian relaxation of those rows is tighter than this LP.
    ``integral`` solves the MILP instead (= R*, for tests on tiny instances).

    Parameters
    ----------
    model : moebench.exact.chain.model.ChainModel

    Returns
    -------
    float or None
        The optimal value (HiGHS tolerances; not a certified bound without a margin).
    """
    try:
        import highspy
    except ImportError:
        return None
    levels = [int(j) for j in model.levels]
    cost: list[float] = []
    r_idx: list[list[int]] = []
    r_val: list[list[float]] = []
    r_hi: list[float] = []
    budget: dict[int, list[int]] = {j: [] for j in levels}
    for layer, (a, p) in enumerate(zip(model.members, model.probs)):
        used = np.flatnonzero(a.any(axis=0))
        prev: dict[int, int] | None = None
        for j in levels:
            x = {int(e): len(cost) + i for i, e in enumerate(used)}
            cost.extend([0.0] * used.size)
            budget[j].extend(x.values())
            if prev is not None:  # nesting: x_j <= x_{j'}
                for e in x:
                    r_idx.append([prev[e], x[e]])
                    r_val.append([1.0, -1.0])
                    r_hi.append(0.0)
            w = float(model.weights[layer, j])
            for s in range(a.shape[0]):
                y = len(cost)
                cost.append(w * float(p[s]))
                for e in np.flatnonzero(a[s]):
                    r_idx.append([y, x[int(e)]])
                    r_val.append([1.0, -1.0])
                    r_hi.append(0.0)
            prev = x
    for j in levels:
        r_idx.append(budget[j])
        r_val.append([1.0] * len(budget[j]))
        r_hi.append(float(model.prefix[j]))
    n = len(cost)
    h = quiet_highs()
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsCost(n, np.arange(n, dtype=np.int32), np.array(cost))
    starts = np.concatenate([[0], np.cumsum([len(i) for i in r_idx])[:-1]]).astype(np.int32)
    idx = np.array([i for row in r_idx for i in row], dtype=np.int32)
    val = np.array([v for row in r_val for v in row])
    h.addRows(len(r_hi), np.full(len(r_hi), -highspy.kHighsInf), np.array(r_hi), idx.size, starts, idx, val)
    if integral:
        h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    return float(h.getInfo().objective_function_value)
