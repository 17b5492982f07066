"""The exact formulations of SPEC section 3 as solver-neutral sparse models built with numpy.

Three formulations share one description, :class:`SparseModel` (column bounds, integrality,
objective, constraint rows as COO triplets, row bounds, and which columns are the placement
binaries), so that every back end (highspy, CP-SAT, the benchmarks) reads the same arrays:

``assign`` (F-assign, general K)
    minimize ``sum_S pi_S z_S`` (= Lat) over binaries ``x[n,g]``, continuous ``y[n,g]`` (serve g
    from n), ``t[g]`` (latency of g) and ``z[S]``::

        y[n,g] <= x[n,g]                 sum_n y[n,g] <= 1          (y0 = 1 - sum_n y eliminated)
        t[g] + sum_n (T0[g] - T[n,g]) y[n,g] = T0[g]
        z[S] >= t[g]  for g in S         capacity rows

    ``t`` is F-assign's right-hand side ``sum_n T y + T0 y0`` named once per expert instead of
    being repeated in every set row (same LP relaxation, K times fewer nonzeros).
``cover`` (F-cover, layer cake, general K)
    maximize the gain ``sum_{k,S} pi_S (v_{k+1} - v_k) a[k,S]`` over ``x``, ``c[k,g]``, ``a[k,S]``
    in [0, 1] with ``c[k,g] <= sum_{n: T[n,g] <= v_k} x[n,g]`` and ``a[k,S] <= c[k,g]``. Levels
    are taken per *set* (a refinement of SPEC's per-layer levels with the same LP relaxation, see
    :func:`cover_structure`), and ``c`` per expert at its own latencies.
``k1`` (F-k1, K = 1 only)
    facility location: minimize ``sum_g p_g T0_g - sum_{n,g} p_g (T0_g - T[n,g]) y[n,g]``
    with ``y <= x``, ``sum_n y[n,g] <= 1`` and capacity rows (``z`` eliminated).

Valid reductions applied to all three (none changes the optimal value):

* a pair (n, g) gets a column only when g is *active* (in some set of positive probability),
  strictly faster on n than in the cloud, and fits n's capacity at all; every other x is 0;
* F-assign: ``y`` exists only for those pairs (so ``T >= T0`` pairs are dropped), ``t`` only for
  experts with a pair, ``z`` only for sets containing such an expert (other sets are constants);
* F-cover: levels are the values ``T0`` and ``T`` of kept pairs of the set's own experts; a set S
  needs ``a[k,S]`` only for levels ``lo(S) <= v_k < max_{e in S} T0_e`` where ``lo(S)`` is the
  largest best-possible latency of its experts (below it ``a = 0``, from ``max T0`` on ``a = 1``);
  ``a <= c[g]`` only where ``T0_g > v_k`` (otherwise ``c`` is the constant 1).

Strengthenings (option ``strengthen`` of the back ends) live in :mod:`moebench.exact.strengthen`;
they come back as an :class:`Extra` (rows over the placement binaries and F-cover's ``a``
columns, reductions, a start placement, a proven bound) that every builder adds to its model.

Objective convention: :attr:`SparseModel.sense` is ``"min"`` for latency models and ``"max"`` for
the gain model. Either way the objective is *shifted and scaled*: its value is
``scale * (Lat - Lat(empty))`` (min: minus the scaled gain) or ``scale * R`` (max). Solver
tolerances act on the objective; the shift makes relative gaps measure the gain, not the latency,
and the scale (:meth:`SparseModel.scale_objective`, docs/tolerances.md) puts absolute tolerances
far below the quantities compared. :meth:`SparseModel.latency` and :meth:`SparseModel.gain_bound`
convert any objective value or dual bound back.

LP relaxations: ``benchmarks/exact_scaling.py --part lp`` compares the bounds of F-assign and
F-cover (SPEC expects F-cover to be usually tighter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError, NotApplicableError
from moebench.instance import Instance

FORMULATIONS = ("assign", "cover", "k1")


@dataclass(frozen=True)
class Pairs:
    """Placement columns that can matter: (server, expert) pairs kept by the reductions.

    Attributes
    ----------
    server, expert : ndarray, shape (P,)
        Server and global expert id of every kept pair, sorted by expert then server.
    useful : ndarray of bool, shape (N, G)
        Mask of kept pairs.
    cand : ndarray, shape (C,)
        Experts with at least one kept pair (candidates), sorted.
    best : ndarray, shape (G,)
        Best possible latency of every expert: ``min(T0, min over kept pairs of T)``.
    """

    server: np.ndarray
    expert: np.ndarray
    useful: np.ndarray
    cand: np.ndarray
    best: np.ndarray


def kept_pairs(inst: Instance) -> Pairs:
    """The (server, expert) pairs worth a column (see the module docstring)."""
    useful = (
        inst.active[None, :]
        & (inst.latency < inst.fallback[None, :])
        & (inst.size[None, :] <= inst.capacity[:, None] * (1 + 1e-12))
    )
    return pairs_of(inst, useful)


def pairs_of(inst: Instance, useful: np.ndarray) -> Pairs:
    """The :class:`Pairs` of an (N, G) mask of kept pairs."""
    expert, server = np.nonzero(useful.T)  # sorted by expert, then server
    cand = np.flatnonzero(useful.any(axis=0))
    best = np.minimum(inst.fallback, np.where(useful, inst.latency, np.inf).min(axis=0))
    return Pairs(server, expert, useful, cand, best)


@dataclass
class SparseModel:
    """A MILP ``opt obj @ v + offset  s.t.  row_lb <= A v <= row_ub, col_lb <= v <= col_ub``.

    Attributes
    ----------
    formulation : str
        ``"assign"``, ``"cover"`` or ``"k1"``.
    sense : str
        ``"min"`` (objective is Lat) or ``"max"`` (objective is the gain R).
    obj, col_lb, col_ub : ndarray, shape (n_cols,)
        Objective coefficients and column bounds.
    integer : ndarray of bool, shape (n_cols,)
        Integrality of each column (only the placement binaries are integer).
    offset : float
        Constant term of the objective.
    rows, cols, vals : ndarray, shape (nnz,)
        Constraint matrix as COO triplets.
    row_lb, row_ub : ndarray, shape (n_rows,)
        Row bounds (``-inf`` / ``inf`` for one-sided rows).
    x_cols : ndarray, shape (P,)
        Column index of the binary of each kept pair ``(pairs.server[i], pairs.expert[i])``.
    pairs : Pairs
        The kept pairs.
    N, G : int
        Placement shape.
    empty_latency : float
        Lat(empty), to convert between latency and gain.
    stats : dict
        Sizes for reports (columns, binaries, rows, nonzeros, levels).
    start : ndarray of bool or None
        A feasible placement (N, G) to start the solver from (from the strengthening ``profile``).
    scale : float
        Objective scale (a power of two, so scaling is exact): objective values are ``scale``
        times ``Lat - Lat(empty)`` (min) or the gain (max), see the module docstring.
    """

    formulation: str
    sense: str
    obj: np.ndarray
    col_lb: np.ndarray
    col_ub: np.ndarray
    integer: np.ndarray
    offset: float
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    row_lb: np.ndarray
    row_ub: np.ndarray
    x_cols: np.ndarray
    pairs: Pairs
    N: int
    G: int
    empty_latency: float
    stats: dict[str, Any] = field(default_factory=dict)
    start: np.ndarray | None = None
    scale: float = 1.0

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self.obj.shape[0])

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.row_lb.shape[0])

    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column-wise compressed matrix ``(start, index, value)``, start of length n_cols + 1."""
        order = np.lexsort((self.rows, self.cols))
        start = np.zeros(self.n_cols + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.cols, minlength=self.n_cols), out=start[1:])
        return start, self.rows[order].astype(np.int64), self.vals[order].astype(np.float64)

    def decode(self, v: np.ndarray) -> np.ndarray:
        """Placement (N, G) of bool from a solution vector (binaries rounded at 0.5)."""
        x = np.zeros((self.N, self.G), dtype=bool)
        on = np.asarray(v, float)[self.x_cols] > 0.5
        x[self.pairs.server[on], self.pairs.expert[on]] = True
        return x

    def encode(self, x: np.ndarray) -> np.ndarray:
        """0/1 values of the binaries for a placement (pairs not kept are ignored)."""
        return np.asarray(x, bool)[self.pairs.server, self.pairs.expert].astype(float)

    def gain(self, objective: float) -> float:
        """The gain R corresponding to a value of ``obj @ v + offset``."""
        v = float(objective) / self.scale
        return -v if self.sense == "min" else v

    def latency(self, objective: float) -> float:
        """Lat corresponding to a value of ``obj @ v + offset``."""
        return self.empty_latency - self.gain(objective)

    def gain_bound(self, bound: float) -> float:
        """Upper bound on the optimal gain from a dual bound on ``obj @ v + offset`` (no tolerance added)."""
        return self.gain(bound)

    def scale_objective(self, scale: float) -> None:
        """Multiply the objective by ``scale`` (in place; a power of two keeps every coefficient exact)."""
        self.obj = self.obj * scale
        self.offset = self.offset * scale
        self.scale = self.scale * scale

    def objective(self, v: np.ndarray) -> float:
        """``obj @ v + offset``."""
        return float(self.obj @ np.asarray(v, float) + self.offset)

    def trivial_solution(self) -> np.ndarray | None:
        """The optimal solution when the model has no rows (every column at its best bound), else None.

        Solvers reject empty models (HiGHS answers "Empty"), which happen when nothing can be cached.
        """
        if self.n_rows:
            return None
        better_up = self.obj < 0 if self.sense == "min" else self.obj > 0
        return np.where(better_up, self.col_ub, self.col_lb).astype(float)


def _cat(parts: list, dt: Any = float) -> np.ndarray:
    """The concatenated blocks ``parts`` as one array of type ``dt`` (empty without blocks)."""
    return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)


class _Builder:
    """Accumulates column blocks and COO rows."""

    def __init__(self) -> None:
        self.n_cols = 0
        self.n_rows = 0
        self.obj: list[np.ndarray] = []
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.int: list[np.ndarray] = []
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.rlb: list[np.ndarray] = []
        self.rub: list[np.ndarray] = []

    def cols(self, n: int, lb: Any, ub: Any, obj: Any = 0.0, integer: bool = False) -> np.ndarray:
        first = self.n_cols
        self.n_cols += n
        self.obj.append(np.broadcast_to(np.asarray(obj, float), (n,)))
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (n,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (n,)))
        self.int.append(np.full(n, integer))
        return np.arange(first, self.n_cols)

    def rows_(self, n: int, lb: Any, ub: Any) -> np.ndarray:
        first = self.n_rows
        self.n_rows += n
        self.rlb.append(np.broadcast_to(np.asarray(lb, float), (n,)))
        self.rub.append(np.broadcast_to(np.asarray(ub, float), (n,)))
        return np.arange(first, self.n_rows)

    def entries(self, r: np.ndarray, c: np.ndarray, v: Any) -> None:
        r = np.asarray(r, np.int64)
        self.r.append(r)
        self.c.append(np.asarray(c, np.int64))
        self.v.append(np.broadcast_to(np.asarray(v, float), r.shape))

    def finish(
        self, inst: Instance, formulation: str, sense: str, offset: float, x_cols: np.ndarray, ex: Extra, **stats: Any
    ) -> SparseModel:
        """The model, with the strengthenings' record and start placement of ``ex`` and further ``stats``."""
        model = SparseModel(
            formulation=formulation,
            sense=sense,
            obj=_cat(self.obj),
            col_lb=_cat(self.lb),
            col_ub=_cat(self.ub),
            integer=_cat(self.int, bool),
            offset=float(offset),
            rows=_cat(self.r, np.int64),
            cols=_cat(self.c, np.int64),
            vals=_cat(self.v),
            row_lb=_cat(self.rlb),
            row_ub=_cat(self.rub),
            x_cols=x_cols,
            pairs=ex.pairs,
            N=inst.N,
            G=inst.G,
            empty_latency=inst.empty_latency,
            start=ex.start,
        )
        model.stats = {
            "formulation": formulation,
            "columns": model.n_cols,
            "binaries": int(model.integer.sum()),
            "rows": model.n_rows,
            "nonzeros": int(model.vals.shape[0]),
            **stats,
            "strengthen": ex.record(),
        }
        return model


def _capacity_rows(b: _Builder, inst: Instance, pairs: Pairs, x: np.ndarray, slot: float | None = None) -> None:
    """sum_g s_g x[n,g] <= Q_n for every server holding a pair whose experts could overflow it.

    With ``slot`` (all sizes equal to it, strengthening ``slots``) the rows count experts:
    sum_g x[n,g] <= floor(Q_n / slot).
    """
    coef, cap, binding = capacity_terms(inst, pairs, slot)
    if len(binding) == 0:
        return
    row_of = np.full(inst.N, -1)
    row_of[binding] = b.rows_(len(binding), -np.inf, cap[binding])
    keep = row_of[pairs.server] >= 0
    b.entries(row_of[pairs.server[keep]], x[keep], coef[keep])


def capacity_terms(
    inst: Instance, pairs: Pairs, slot: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The capacity rows of the kept pairs: each pair's coefficient, every server's right-hand side,
    and the servers that need a row (a server that can hold all its pairs needs none). With
    ``slot`` (strengthening ``slots``) the rows count experts: coefficients 1, ``floor(Q / slot)``."""
    if slot is not None:
        cap = slot_capacity(inst, slot).astype(float)
        coef = np.ones(len(pairs.server))
    else:
        cap = inst.capacity
        coef = inst.size[pairs.expert]
    load = np.bincount(pairs.server, weights=coef, minlength=inst.N)
    return coef, cap, np.flatnonzero(load > cap)


def _extra_rows(b: _Builder, ex: Extra, x: np.ndarray, a: np.ndarray | None = None) -> None:
    """Append the strengthenings' rows (``x`` / ``a``: column of each pair / of each F-cover a)."""
    arr = ex.arrays()
    if len(arr["lb"]) == 0:
        return
    rows = b.rows_(len(arr["lb"]), arr["lb"], arr["ub"])
    b.entries(rows[arr["x_row"]], x[arr["x_pair"]], arr["x_coef"])
    if len(arr["a_row"]):
        assert a is not None
        b.entries(rows[arr["a_row"]], a[arr["a_idx"]], arr["a_coef"])


def _assignment_rows(b: _Builder, pairs: Pairs, x: np.ndarray, obj: Any = 0.0) -> np.ndarray:
    """y <= x and sum_n y[n,g] <= 1; returns the y columns."""
    p = len(x)
    y = b.cols(p, 0.0, 1.0, obj)
    r = b.rows_(p, -np.inf, 0.0)
    b.entries(r, y, 1.0)
    b.entries(r, x, -1.0)
    # one row per candidate expert; pairs are sorted by expert so their ranks are cand ranks
    cand_rank = np.searchsorted(pairs.cand, pairs.expert)
    r1 = b.rows_(len(pairs.cand), -np.inf, 1.0)
    b.entries(r1[cand_rank], y, 1.0)
    return y


def build_assign(inst: Instance, ex: Extra | None = None) -> SparseModel:
    """F-assign (see the module docstring); objective + offset = Lat - Lat(empty). ``ex``: strengthenings."""
    ex = plain_extra(inst, "assign") if ex is None else ex
    pairs = ex.pairs
    b = _Builder()
    x = b.cols(len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    y = _assignment_rows(b, pairs, x)
    cand = pairs.cand
    t = b.cols(len(cand), pairs.best[cand], inst.fallback[cand])
    rank = np.full(inst.G, -1)
    rank[cand] = np.arange(len(cand))
    rt = b.rows_(len(cand), inst.fallback[cand], inst.fallback[cand])
    b.entries(rt, t, 1.0)
    b.entries(rt[rank[pairs.expert]], y, inst.fallback[pairs.expert] - inst.latency[pairs.server, pairs.expert])
    # z only for sets containing a candidate; the others are constants in the offset
    is_c = rank[inst.sets] >= 0  # (M, K)
    zset = np.flatnonzero(is_c.any(axis=1) & (inst.probs > 0))
    const = np.setdiff1d(np.arange(inst.M), zset)
    offset = float(inst.probs[const] @ inst.base_set_latency[const])
    fixed = np.where(is_c, 0.0, inst.fallback[inst.sets]).max(axis=1)  # max T0 of non-candidates
    best_set = np.maximum(fixed, pairs.best[inst.sets].max(axis=1))
    if ex.z_lb is not None:
        best_set = np.maximum(best_set, ex.z_lb)
    z = b.cols(len(zset), best_set[zset], inst.base_set_latency[zset], inst.probs[zset])
    s_idx, k_idx = np.nonzero(is_c[zset])
    g = inst.sets[zset[s_idx], k_idx]
    rz = b.rows_(len(s_idx), 0.0, np.inf)
    b.entries(rz, z[s_idx], 1.0)
    b.entries(rz, t[rank[g]], -1.0)
    _extra_rows(b, ex, x)
    return b.finish(inst, "assign", "min", offset - inst.empty_latency, x, ex, sets=len(zset))


def build_k1(inst: Instance, ex: Extra | None = None) -> SparseModel:
    """F-k1 (facility location, K = 1); objective + offset = Lat - Lat(empty). ``ex``: strengthenings.

    Raises
    ------
    NotApplicableError
        When K != 1.
    """
    check_formulation(inst, "k1")
    ex = plain_extra(inst, "k1") if ex is None else ex
    pairs = ex.pairs
    b = _Builder()
    x = b.cols(len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    p = inst.marginals
    saving = p[pairs.expert] * (inst.fallback[pairs.expert] - inst.latency[pairs.server, pairs.expert])
    _assignment_rows(b, pairs, x, -saving)
    _extra_rows(b, ex, x)
    return b.finish(inst, "k1", "min", float(p @ inst.fallback) - inst.empty_latency, x, ex)


@dataclass(frozen=True)
class CoverStructure:
    """Index arrays of F-cover (shared by the sparse, Pyomo and CP-SAT builders).

    Attributes
    ----------
    a_set, a_value, a_weight : ndarray, shape (A,)
        One ``a`` per (set S, level v) with ``lo(S) <= v < base(S)``; its objective weight is
        ``pi_S (v' - v)`` with v' the next level of S.
    c_expert, c_value : ndarray, shape (C,)
        One ``c`` per (expert g, own latency w): ``c = [tau_g <= w]``.
    ac_a, ac_c : ndarray
        Rows ``a[ac_a] <= c[ac_c]``, sorted by ``ac_a``.
    cx_c, cx_pair : ndarray
        ``c[cx_c] <= sum of x[cx_pair]`` (pair index into :class:`Pairs`), sorted by ``cx_c``.
    """

    a_set: np.ndarray
    a_value: np.ndarray
    a_weight: np.ndarray
    c_expert: np.ndarray
    c_value: np.ndarray
    ac_a: np.ndarray
    ac_c: np.ndarray
    cx_c: np.ndarray
    cx_pair: np.ndarray


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened ``[(i, j) for i in range(len(lo)) for j in range(lo[i], hi[i])]`` without a loop."""
    cnt = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), cnt)
    first = np.cumsum(cnt) - cnt
    return owner, lo[owner] + np.arange(int(cnt.sum())) - first[owner]


def cover_structure(inst: Instance, pairs: Pairs | None = None) -> CoverStructure:
    """Levels and index arrays of F-cover, vectorized over sets and experts.

    Levels are taken per *set*: the layer cake of ``max_{e in S} tau_e`` only needs the values
    ``tau_e`` can take for e in S (``T0_e`` and ``T`` of kept pairs). This is SPEC's per-layer
    construction with the levels between two values of a set merged: the merged ``a`` rows are
    identical, so the LP relaxation is the same, while the model is much smaller when latencies
    differ per expert (with server-only latencies both coincide).
    """
    pairs = kept_pairs(inst) if pairs is None else pairs
    lat_p = inst.latency[pairs.server, pairs.expert]
    # every value each expert can take: T0 and its kept latencies, sorted by expert
    ev_expert = np.concatenate([np.arange(inst.G), pairs.expert])
    ev_value = np.concatenate([inst.fallback, lat_p])
    order = np.lexsort((ev_value, ev_expert))
    ev_expert, ev_value = ev_expert[order], ev_value[order]
    base = inst.base_set_latency
    lo = pairs.best[inst.sets].max(axis=1)
    # candidate (set, value) pairs from the members' values, kept when lo(S) <= v < base(S)
    owner = np.repeat(np.arange(inst.M), inst.K)
    members = inst.sets.ravel()
    s_idx, ev_idx = _ranges(np.searchsorted(ev_expert, members, "left"), np.searchsorted(ev_expert, members, "right"))
    a_set, a_value = owner[s_idx], ev_value[ev_idx]
    keep = (a_value >= lo[a_set]) & (a_value < base[a_set]) & (inst.probs[a_set] > 0)
    a_set, a_value = a_set[keep], a_value[keep]
    order = np.lexsort((a_value, a_set))
    a_set, a_value = a_set[order], a_value[order]
    first = np.ones(len(a_set), bool)
    first[1:] = (a_set[1:] != a_set[:-1]) | (a_value[1:] != a_value[:-1])
    a_set, a_value = a_set[first], a_value[first]
    last = np.ones(len(a_set), bool)
    last[:-1] = a_set[1:] != a_set[:-1]
    nxt = np.where(last, base[a_set], np.append(a_value[1:], 0.0)[: len(a_set)])
    a_weight = inst.probs[a_set] * (nxt - a_value)
    # a <= c[g, w_g(v)] for members with T0_g > v, w_g(v) = largest kept latency of g <= v
    ai = np.repeat(np.arange(len(a_set)), inst.K)
    g = inst.sets[a_set].ravel()
    need = inst.fallback[g] > a_value[ai]
    ai, g = ai[need], g[need]
    uniq = np.unique(np.concatenate([inst.fallback, lat_p]))
    r = len(uniq)
    porder = np.lexsort((pairs.server, lat_p, pairs.expert))  # pairs by expert, then latency
    pkey = pairs.expert[porder] * r + np.searchsorted(uniq, lat_p[porder])
    qkey = g * r + np.searchsorted(uniq, a_value[ai])
    hit = porder[np.searchsorted(pkey, qkey, side="right") - 1]  # a pair of g with the largest T <= v
    ckey, ac_c = np.unique(pairs.expert[hit] * r + np.searchsorted(uniq, lat_p[hit]), return_inverse=True)
    c_expert, c_value = ckey // r, uniq[ckey % r]
    # c[g, w] <= sum of x over the pairs of g with T <= w (a prefix of g's pairs in porder)
    start = np.searchsorted(pkey, c_expert * r, side="left")
    stop = np.searchsorted(pkey, ckey, side="right")
    cx_c, cx_pos = _ranges(start, stop)
    return CoverStructure(a_set, a_value, a_weight, c_expert, c_value, ai, ac_c.ravel(), cx_c, porder[cx_pos])


def build_cover(inst: Instance, ex: Extra | None = None) -> SparseModel:
    """F-cover (layer cake, see the module docstring); objective + offset = gain R. ``ex``: strengthenings."""
    ex = plain_extra(inst, "cover") if ex is None else ex
    pairs, cs = ex.pairs, ex.cs
    b = _Builder()
    x = b.cols(len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    c = b.cols(len(cs.c_expert), 0.0, 1.0)
    a_ub = np.ones(len(cs.a_set))
    a_ub[ex.a_zero] = 0.0
    a = b.cols(len(cs.a_set), 0.0, a_ub, cs.a_weight)
    rc = b.rows_(len(c), -np.inf, 0.0)
    b.entries(rc, c, 1.0)
    b.entries(rc[cs.cx_c], x[cs.cx_pair], -1.0)
    ra = b.rows_(len(cs.ac_a), -np.inf, 0.0)
    b.entries(ra, a[cs.ac_a], 1.0)
    b.entries(ra, c[cs.ac_c], -1.0)
    _extra_rows(b, ex, x, a)
    return b.finish(inst, "cover", "max", 0.0, x, ex, set_levels=len(cs.a_set))


def plain_extra(inst: Instance, formulation: str) -> Extra:
    """The :class:`Extra` of no strengthening: every kept pair, F-cover's structure, no rows."""
    pairs = kept_pairs(inst)
    return Extra(names=(), pairs=pairs, cs=cover_structure(inst, pairs) if formulation == "cover" else None)


def trivial_gain_bound(inst: Instance) -> float:
    """A valid upper bound on the optimal gain: every expert at its best possible latency at once."""
    best = kept_pairs(inst).best
    return float(inst.probs @ (inst.base_set_latency - best[inst.sets].max(axis=1)))


BUILDERS = {"assign": build_assign, "cover": build_cover, "k1": build_k1}

#: Float solvers (HiGHS, Pyomo's solvers) get the objective scaled so that the trivial gain bound
#: is about this large: their absolute tolerances (around 1e-6 in objective units) then stay near
#: 1e-12 of the gain (docs/tolerances.md; measured in benchmarks/published_optima.py).
OBJECTIVE_TARGET = 2.0**20


def objective_scale(inst: Instance) -> float:
    """The power of two mapping the trivial gain bound of ``inst`` to about :data:`OBJECTIVE_TARGET`."""
    u = trivial_gain_bound(inst)
    if not u > 0:
        return 1.0
    return float(2.0 ** round(np.log2(OBJECTIVE_TARGET / u)))


def check_formulation(inst: Instance | None, formulation: str) -> None:
    """Raise InputError / NotApplicableError when ``formulation`` cannot be used on ``inst`` (None:
    only check the name)."""
    if formulation not in FORMULATIONS:
        raise InputError(f"unknown formulation {formulation!r}; known: {', '.join(FORMULATIONS)}", where="formulation")
    if inst is not None and formulation == "k1" and inst.K != 1:
        raise NotApplicableError(f"formulation k1 needs K = 1, the instance has K = {inst.K}")


@dataclass
class Extra:
    """Rows and reductions added by the strengthenings, shared by every back end.

    Rows are ``lb <= sum coef * var <= ub`` over placement binaries (``x``, indexed by kept pair)
    and F-cover's ``a`` columns (indexed as in :class:`CoverStructure`).

    Attributes
    ----------
    names : tuple of str
        Strengthenings requested.
    pairs : Pairs
        Kept pairs after ``prune``.
    cs : CoverStructure or None
        F-cover's structure over ``pairs`` (None for the other formulations).
    slot_size : float or None
        With ``slots`` (equal sizes): the common size; capacity rows are then counts ``<= floor(Q / s)``.
    a_zero : ndarray
        ``a`` columns fixed to 0 by ``prune`` (set cannot fit within that level).
    z_lb : ndarray or None
        F-assign: lower bound on every set's latency from ``prune`` (shape (M,)).
    x_row, x_pair, x_coef, a_row, a_idx, a_coef : ndarray
        COO entries of the extra rows.
    lb, ub : ndarray
        Bounds of the extra rows.
    info : dict
        Per strengthening: what it added, or why it did not apply.
    start : ndarray of bool or None
        A feasible placement (N, G) found by ``profile``, to start the solver from.
    gain_bound : float or None
        A proven upper bound on the optimal gain from ``profile`` (the ``bound-levels`` bound of its
        profiles); the back ends report the smaller of it and the solver's bound.
    """

    names: tuple[str, ...]
    pairs: Pairs
    cs: CoverStructure | None = None
    slot_size: float | None = None
    a_zero: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    z_lb: np.ndarray | None = None
    x_row: list = field(default_factory=list)
    x_pair: list = field(default_factory=list)
    x_coef: list = field(default_factory=list)
    a_row: list = field(default_factory=list)
    a_idx: list = field(default_factory=list)
    a_coef: list = field(default_factory=list)
    lb: list = field(default_factory=list)
    ub: list = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    start: np.ndarray | None = None
    gain_bound: float | None = None

    @property
    def n_rows(self) -> int:
        """Number of extra rows."""
        return int(sum(len(v) for v in self.lb))

    def add_rows(self, lb: Any, ub: Any, n: int) -> np.ndarray:
        """Reserve ``n`` rows with bounds ``lb``/``ub``; returns their indices."""
        first = self.n_rows
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (n,)).copy())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (n,)).copy())
        return np.arange(first, first + n)

    def x_entries(self, r: np.ndarray, p: np.ndarray, v: Any) -> None:
        """Entries on placement binaries (pair indices ``p``)."""
        r = np.asarray(r, np.int64)
        self.x_row.append(r)
        self.x_pair.append(np.asarray(p, np.int64))
        self.x_coef.append(np.broadcast_to(np.asarray(v, float), r.shape).copy())

    def a_entries(self, r: np.ndarray, j: np.ndarray, v: Any) -> None:
        """Entries on F-cover's ``a`` columns."""
        r = np.asarray(r, np.int64)
        self.a_row.append(r)
        self.a_idx.append(np.asarray(j, np.int64))
        self.a_coef.append(np.broadcast_to(np.asarray(v, float), r.shape).copy())

    def arrays(self) -> dict[str, np.ndarray]:
        """The rows as flat arrays (keys ``x_row x_pair x_coef a_row a_idx a_coef lb ub``)."""
        return {
            "x_row": _cat(self.x_row, np.int64),
            "x_pair": _cat(self.x_pair, np.int64),
            "x_coef": _cat(self.x_coef, float),
            "a_row": _cat(self.a_row, np.int64),
            "a_idx": _cat(self.a_idx, np.int64),
            "a_coef": _cat(self.a_coef, float),
            "lb": _cat(self.lb, float),
            "ub": _cat(self.ub, float),
        }

    def record(self) -> dict[str, Any]:
        """What was requested and what each strengthening did (stored in ``Solution.options``)."""
        return {"requested": list(self.names), **self.info}


def equal_size(inst: Instance) -> float | None:
    """The common expert size when all sizes are equal (and positive), else None."""
    s = inst.size
    return float(s[0]) if len(s) and s[0] > 0 and np.all(s == s[0]) else None


def slot_capacity(inst: Instance, s: float) -> np.ndarray:
    """Whole expert slots floor(Q_n / s); the factor 1 + 1e-12 absorbs float noise such as
    (3 * 17.3) / 17.3 = 2.9999999999999996 and stays well inside the evaluator's slack of 1e-9."""
    return np.floor(inst.capacity / s * (1 + 1e-12)).astype(np.int64)
