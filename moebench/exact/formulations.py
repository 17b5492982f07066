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

Strengthenings (option ``strengthen`` of the back ends, :func:`strengthen_model`; validity and
measurements in docs/milp.md): ``nodup`` (at most one copy per expert), ``slots`` (capacity rows
in expert counts when sizes are equal), ``prune`` (set levels that cannot fit fixed to 0, experts
that can never matter removed; F-assign gets the matching lower bounds on set latencies),
``sym`` (interchangeable servers ordered by load, interchangeable experts by latency) and
``profile`` (F-cover on chain-reducible instances: per-layer profile envelope cuts and per-level
(max,+) DP rows from the proven profiles of :mod:`moebench.exact.chain.profiles`). They are returned as an
:class:`Extra` (rows over the placement binaries and F-cover's ``a`` columns) that every back end
adds to its own model.

Objective convention: :attr:`SparseModel.sense` is ``"min"`` for latency models (objective +
offset = Lat) and ``"max"`` for the gain model (objective + offset = R), so
:meth:`SparseModel.latency` and :meth:`SparseModel.gain_bound` convert any objective value or
dual bound into a latency and an upper bound on the optimal gain.

LP relaxations: ``benchmarks/exact_scaling.py --part lp`` compares the bounds of F-assign and
F-cover (SPEC expects F-cover to be usually tighter).
"""

from __future__ import annotations

import itertools
import time
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
    blocks : dict
        Column ranges of each variable family (e.g. ``{"x": (0, P), "z": (lo, hi)}``).
    stats : dict
        Sizes for reports (columns, binaries, rows, nonzeros, levels).
    start : ndarray of bool or None
        A feasible placement (N, G) to start the solver from (from the strengthening ``profile``).
    extra_bound : float or None
        A proven upper bound on the optimal gain found while building (strengthening ``profile``).
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
    blocks: dict[str, tuple[int, int]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    start: np.ndarray | None = None
    extra_bound: float | None = None

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self.obj.shape[0])

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.row_lb.shape[0])

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row-wise compressed matrix ``(start, index, value)``, start of length n_rows + 1."""
        return _compress(self.rows, self.cols, self.vals, self.n_rows)

    def csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Column-wise compressed matrix ``(start, index, value)``, start of length n_cols + 1."""
        return _compress(self.cols, self.rows, self.vals, self.n_cols)

    def decode(self, v: np.ndarray) -> np.ndarray:
        """Placement (N, G) of bool from a solution vector (binaries rounded at 0.5)."""
        x = np.zeros((self.N, self.G), dtype=bool)
        on = np.asarray(v, float)[self.x_cols] > 0.5
        x[self.pairs.server[on], self.pairs.expert[on]] = True
        return x

    def encode(self, x: np.ndarray) -> np.ndarray:
        """0/1 values of the binaries for a placement (pairs not kept are ignored)."""
        return np.asarray(x, bool)[self.pairs.server, self.pairs.expert].astype(float)

    def latency(self, objective: float) -> float:
        """Lat corresponding to a value of ``obj @ v + offset``."""
        return float(objective) if self.sense == "min" else self.empty_latency - float(objective)

    def gain_bound(self, bound: float) -> float:
        """Upper bound on the optimal gain from a dual bound on ``obj @ v + offset``."""
        return self.empty_latency - float(bound) if self.sense == "min" else float(bound)

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

    def max_violation(self, v: np.ndarray) -> float:
        """Largest violation of a row or column bound by ``v`` (0 when feasible)."""
        v = np.asarray(v, float)
        act = np.bincount(self.rows, weights=self.vals * v[self.cols], minlength=self.n_rows)
        viol = [
            np.maximum(self.row_lb - act, 0),
            np.maximum(act - self.row_ub, 0),
            np.maximum(self.col_lb - v, 0),
            np.maximum(v - self.col_ub, 0),
        ]
        return float(max(a.max(initial=0.0) for a in viol))


def _compress(major: np.ndarray, minor: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    order = np.lexsort((minor, major))
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(major, minlength=n), out=start[1:])
    return start, minor[order].astype(np.int64), vals[order].astype(np.float64)


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
        self.blocks: dict[str, tuple[int, int]] = {}

    def cols(self, name: str, n: int, lb: Any, ub: Any, obj: Any = 0.0, integer: bool = False) -> np.ndarray:
        first = self.n_cols
        self.n_cols += n
        self.blocks[name] = (first, self.n_cols)
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

    def finish(self, inst: Instance, formulation: str, sense: str, offset: float, x_cols: np.ndarray, pairs: Pairs):
        cat = lambda parts, dt=float: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
        model = SparseModel(
            formulation=formulation,
            sense=sense,
            obj=cat(self.obj),
            col_lb=cat(self.lb),
            col_ub=cat(self.ub),
            integer=cat(self.int, bool),
            offset=float(offset),
            rows=cat(self.r, np.int64),
            cols=cat(self.c, np.int64),
            vals=cat(self.v),
            row_lb=cat(self.rlb),
            row_ub=cat(self.rub),
            x_cols=x_cols,
            pairs=pairs,
            N=inst.N,
            G=inst.G,
            empty_latency=inst.empty_latency,
            blocks=dict(self.blocks),
        )
        model.stats = {
            "formulation": formulation,
            "columns": model.n_cols,
            "binaries": int(model.integer.sum()),
            "rows": model.n_rows,
            "nonzeros": int(model.vals.shape[0]),
        }
        return model


def _capacity_rows(b: _Builder, inst: Instance, pairs: Pairs, x: np.ndarray, slot: float | None = None) -> None:
    """sum_g s_g x[n,g] <= Q_n for every server holding a pair whose experts could overflow it.

    With ``slot`` (all sizes equal to it, strengthening ``slots``) the rows count experts:
    sum_g x[n,g] <= floor(Q_n / slot).
    """
    if slot is not None:
        cap = slot_capacity(inst, slot).astype(float)
        load = np.bincount(pairs.server, minlength=inst.N).astype(float)
        coef = np.ones(len(pairs.server))
    else:
        cap = inst.capacity
        load = np.bincount(pairs.server, weights=inst.size[pairs.expert], minlength=inst.N)
        coef = inst.size[pairs.expert]
    binding = np.flatnonzero(load > cap)  # a server that can hold all its pairs needs no row
    if len(binding) == 0:
        return
    row_of = np.full(inst.N, -1)
    row_of[binding] = b.rows_(len(binding), -np.inf, cap[binding])
    keep = row_of[pairs.server] >= 0
    b.entries(row_of[pairs.server[keep]], x[keep], coef[keep])


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
    y = b.cols("y", p, 0.0, 1.0, obj)
    r = b.rows_(p, -np.inf, 0.0)
    b.entries(r, y, 1.0)
    b.entries(r, x, -1.0)
    # one row per candidate expert; pairs are sorted by expert so their ranks are cand ranks
    cand_rank = np.searchsorted(pairs.cand, pairs.expert)
    r1 = b.rows_(len(pairs.cand), -np.inf, 1.0)
    b.entries(r1[cand_rank], y, 1.0)
    return y


def build_assign(inst: Instance, ex: Extra | None = None) -> SparseModel:
    """F-assign (see the module docstring); objective + offset = Lat. ``ex``: strengthenings."""
    ex = strengthen_model(inst, "assign", ()) if ex is None else ex
    pairs = ex.pairs
    b = _Builder()
    x = b.cols("x", len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    y = _assignment_rows(b, pairs, x)
    cand = pairs.cand
    t = b.cols("t", len(cand), pairs.best[cand], inst.fallback[cand])
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
    z = b.cols("z", len(zset), best_set[zset], inst.base_set_latency[zset], inst.probs[zset])
    s_idx, k_idx = np.nonzero(is_c[zset])
    g = inst.sets[zset[s_idx], k_idx]
    rz = b.rows_(len(s_idx), 0.0, np.inf)
    b.entries(rz, z[s_idx], 1.0)
    b.entries(rz, t[rank[g]], -1.0)
    _extra_rows(b, ex, x)
    model = b.finish(inst, "assign", "min", offset, x, pairs)
    model.stats["sets"] = len(zset)
    model.stats["strengthen"] = ex.record()
    model.start = ex.start
    model.extra_bound = ex.gain_bound
    return model


def build_k1(inst: Instance, ex: Extra | None = None) -> SparseModel:
    """F-k1 (facility location, K = 1); objective + offset = Lat. ``ex``: strengthenings.

    Raises
    ------
    NotApplicableError
        When K != 1.
    """
    if inst.K != 1:
        raise NotApplicableError(f"formulation k1 needs K = 1, the instance has K = {inst.K}")
    ex = strengthen_model(inst, "k1", ()) if ex is None else ex
    pairs = ex.pairs
    b = _Builder()
    x = b.cols("x", len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    p = inst.marginals
    saving = p[pairs.expert] * (inst.fallback[pairs.expert] - inst.latency[pairs.server, pairs.expert])
    _assignment_rows(b, pairs, x, -saving)
    _extra_rows(b, ex, x)
    model = b.finish(inst, "k1", "min", float(p @ inst.fallback), x, pairs)
    model.stats["strengthen"] = ex.record()
    model.start = ex.start
    model.extra_bound = ex.gain_bound
    return model


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
    ex = strengthen_model(inst, "cover", ()) if ex is None else ex
    pairs, cs = ex.pairs, ex.cs
    b = _Builder()
    x = b.cols("x", len(pairs.server), 0.0, 1.0, integer=True)
    _capacity_rows(b, inst, pairs, x, ex.slot_size)
    c = b.cols("c", len(cs.c_expert), 0.0, 1.0)
    a_ub = np.ones(len(cs.a_set))
    a_ub[ex.a_zero] = 0.0
    a = b.cols("a", len(cs.a_set), 0.0, a_ub, cs.a_weight)
    rc = b.rows_(len(c), -np.inf, 0.0)
    b.entries(rc, c, 1.0)
    b.entries(rc[cs.cx_c], x[cs.cx_pair], -1.0)
    ra = b.rows_(len(cs.ac_a), -np.inf, 0.0)
    b.entries(ra, a[cs.ac_a], 1.0)
    b.entries(ra, c[cs.ac_c], -1.0)
    _extra_rows(b, ex, x, a)
    model = b.finish(inst, "cover", "max", 0.0, x, pairs)
    model.stats["set_levels"] = len(cs.a_set)
    model.stats["strengthen"] = ex.record()
    model.start = ex.start
    model.extra_bound = ex.gain_bound
    return model


_BUILDERS = {"assign": build_assign, "cover": build_cover, "k1": build_k1}


def build_model(
    inst: Instance,
    formulation: str,
    strengthen: tuple[str, ...] = (),
    deadline: float | None = None,
    ex: Extra | None = None,
) -> SparseModel:
    """Build ``formulation`` (``assign``, ``cover`` or ``k1``) for ``inst``.

    ``strengthen`` names strengthenings (:data:`STRENGTHENINGS`; none by default here, the back
    ends default to :data:`DEFAULT_STRENGTHEN`); ``deadline`` (``time.monotonic()``) bounds the
    profile refinement of ``profile``. ``ex``, when given, is a ready :func:`strengthen_model`
    result and replaces both. What each strengthening did is in ``model.stats["strengthen"]``.

    Raises
    ------
    InputError
        For an unknown formulation name.
    NotApplicableError
        For ``k1`` when K != 1.
    """
    try:
        builder = _BUILDERS[formulation]
    except KeyError:
        raise InputError(
            f"unknown formulation {formulation!r}; known: {', '.join(FORMULATIONS)}", where="formulation"
        ) from None
    check_formulation(inst, formulation)
    if ex is None:
        ex = strengthen_model(inst, formulation, tuple(strengthen), deadline)
    return builder(inst, ex)


def check_formulation(inst: Instance, formulation: str) -> None:
    """Raise InputError / NotApplicableError when ``formulation`` cannot be used on ``inst``."""
    if formulation not in FORMULATIONS:
        raise InputError(f"unknown formulation {formulation!r}; known: {', '.join(FORMULATIONS)}", where="formulation")
    if formulation == "k1" and inst.K != 1:
        raise NotApplicableError(f"formulation k1 needs K = 1, the instance has K = {inst.K}")


# ---- strengthenings (issue 7, docs/milp.md) ----------------------------------------------------
#: Strengthenings in the order they are applied; each one is switched by the ``strengthen`` option.
STRENGTHENINGS = ("nodup", "slots", "prune", "sym", "profile")
#: The default of the ``strengthen`` option (measured in docs/milp.md).
DEFAULT_STRENGTHEN = ("nodup", "slots", "prune", "sym", "profile")
#: Share of the time limit (and cap in seconds) spent refining the per-layer profiles of ``profile``.
PROFILE_TIME_SHARE = 0.25
PROFILE_MAX_SECONDS = 30.0
#: Branch-and-bound nodes of the first search of a profile entry in ``profile`` (certify_level grows it 4x per revisit).
PROFILE_NODES = 2_000


def parse_strengthen(raw: Any) -> tuple[str, ...]:
    """The strengthenings named by an option value, in canonical order.

    ``None`` gives :data:`DEFAULT_STRENGTHEN`; ``"all"``, ``"none"`` (or ``""``) and comma lists of
    :data:`STRENGTHENINGS` are accepted, as are lists/tuples of names.

    Raises
    ------
    InputError
        For an unknown name.
    """
    if raw is None:
        return DEFAULT_STRENGTHEN
    if isinstance(raw, (list, tuple)):
        names = [str(v).strip() for v in raw]
    else:
        names = [v.strip() for v in str(raw).split(",")]
    names = [v for v in names if v]
    if names in ([], ["none"]):
        return ()
    if names == ["all"]:
        return STRENGTHENINGS
    if names == ["default"]:
        return DEFAULT_STRENGTHEN
    bad = sorted(set(names) - set(STRENGTHENINGS))
    if bad:
        raise InputError(
            f"unknown strengthening(s) {', '.join(bad)}; known: {', '.join(STRENGTHENINGS)}, all, none, default",
            where="strengthen",
        )
    return tuple(s for s in STRENGTHENINGS if s in names)


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

        def cat(parts: list, dt: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)

        return {
            "x_row": cat(self.x_row, np.int64),
            "x_pair": cat(self.x_pair, np.int64),
            "x_coef": cat(self.x_coef, float),
            "a_row": cat(self.a_row, np.int64),
            "a_idx": cat(self.a_idx, np.int64),
            "a_coef": cat(self.a_coef, float),
            "lb": cat(self.lb, float),
            "ub": cat(self.ub, float),
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


def _filter_pairs(inst: Instance, pairs: Pairs, keep: np.ndarray) -> Pairs:
    useful = np.zeros_like(pairs.useful)
    useful[pairs.server[keep], pairs.expert[keep]] = True
    cand = np.flatnonzero(useful.any(axis=0))
    best = np.minimum(inst.fallback, np.where(useful, inst.latency, np.inf).min(axis=0))
    return Pairs(pairs.server[keep], pairs.expert[keep], useful, cand, best)


def _set_fits(inst: Instance, pairs: Pairs, a_set: np.ndarray, a_value: np.ndarray, slot: float | None) -> np.ndarray:
    """For every (set S, level v): can all of S be available within latency v at once?

    Members with T0 > v must be cached on servers where they take <= v; they are distinct experts,
    so their total size must fit the total capacity of the servers that can serve any of them
    within v (in whole slots when sizes are equal). Vectorized over (level, member, server).
    """
    if len(a_set) == 0:
        return np.zeros(0, bool)
    g = inst.sets[a_set]  # (A, K)
    v = a_value[:, None]
    need = inst.fallback[g] > v  # (A, K)
    fast = pairs.useful.T[g] & (inst.latency.T[g] <= v[:, :, None])  # (A, K, N)
    servers = (fast & need[:, :, None]).any(axis=1)  # (A, N)
    if slot is not None:
        return need.sum(axis=1) <= servers @ slot_capacity(inst, slot)
    size_need = (inst.size[g] * need).sum(axis=1)
    return size_need <= (servers @ inst.capacity) * (1 + 1e-9)


def _prune(inst: Instance, ex: Extra, formulation: str) -> None:
    """``prune``: levels a set cannot fit in, and experts whose caching can never matter."""
    if formulation == "k1":
        ex.info["prune"] = "k1: nothing beyond kept_pairs (inactive experts, T >= T0, too large)"
        return
    slot = equal_size(inst)
    cs = cover_structure(inst, ex.pairs)
    fits = _set_fits(inst, ex.pairs, cs.a_set, cs.a_value, slot)
    # an expert matters only through some a that needs it and can be 1
    used = np.zeros(inst.G, bool)
    live = fits[cs.ac_a]
    used[cs.c_expert[cs.ac_c[live]]] = True
    keep = used[ex.pairs.expert]
    dropped = int((~keep).sum())
    if dropped:
        ex.pairs = _filter_pairs(inst, ex.pairs, keep)
        cs = cover_structure(inst, ex.pairs)
        fits = _set_fits(inst, ex.pairs, cs.a_set, cs.a_value, slot)
    ex.info["prune"] = {"pairs_removed": dropped, "levels_fixed_0": int((~fits).sum()), "levels": len(fits)}
    if formulation == "cover":
        ex.cs = cs
        ex.a_zero = np.flatnonzero(~fits)
    else:
        # F-assign: a set's latency is at least its lowest level that fits (else its cloud latency)
        z_lb = inst.base_set_latency.astype(float).copy()
        ok = np.flatnonzero(fits)
        np.minimum.at(z_lb, cs.a_set[ok], cs.a_value[ok])
        ex.z_lb = z_lb


def _nodup(inst: Instance, ex: Extra) -> None:
    """``nodup``: sum_n x[n,g] <= 1 for experts with two or more kept pairs."""
    p = ex.pairs
    cnt = np.bincount(p.expert, minlength=inst.G)
    sel = np.flatnonzero(cnt[p.expert] >= 2)
    multi = np.flatnonzero(cnt >= 2)
    if len(multi) == 0:
        ex.info["nodup"] = {"rows": 0}
        return
    rows = ex.add_rows(-np.inf, 1.0, len(multi))
    ex.x_entries(rows[np.searchsorted(multi, p.expert[sel])], sel, 1.0)
    ex.info["nodup"] = {"rows": len(multi)}


def _classes(keys: np.ndarray) -> list[np.ndarray]:
    """Groups (size >= 2) of row indices with identical rows of ``keys``, each sorted."""
    if len(keys) == 0:
        return []
    _, inv, cnt = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    return [np.flatnonzero(inv == c) for c in np.flatnonzero(cnt >= 2)]


def _sym(inst: Instance, ex: Extra) -> None:
    """``sym``: order interchangeable servers by load and interchangeable experts by latency."""
    p = ex.pairs
    slot = equal_size(inst)
    n_srv_rows = n_exp_rows = 0
    pair_id = np.full((inst.N, inst.G), -1)
    pair_id[p.server, p.expert] = np.arange(len(p.server))
    # servers: same capacity, same kept experts, same latency on each of them
    lat = np.where(p.useful, inst.latency, np.inf)
    keys = np.hstack([inst.capacity[:, None], p.useful.astype(float), lat])
    for cls in _classes(keys):
        if not p.useful[cls[0]].any():
            continue
        for n1, n2 in itertools.pairwise(cls):
            # load(n1) >= load(n2): swapping two such servers' contents changes nothing
            r = ex.add_rows(0.0, np.inf, 1)
            g = np.flatnonzero(p.useful[n1])
            w = np.ones(len(g)) if slot is not None else inst.size[g]
            ex.x_entries(np.repeat(r, len(g)), pair_id[n1, g], w)
            ex.x_entries(np.repeat(r, len(g)), pair_id[n2, g], -w)
            n_srv_rows += 1
    # experts: same size, fallback, kept servers and latencies, and the same activation sets
    cand = p.cand
    if len(cand) >= 2:
        memb = np.zeros((inst.G, inst.M), bool)
        pos = np.flatnonzero(inst.probs > 0)
        memb[inst.sets[pos].ravel(), np.repeat(pos, inst.K)] = True
        keys = np.hstack(
            [
                inst.size[cand, None],
                inst.fallback[cand, None],
                p.useful[:, cand].T.astype(float),
                lat[:, cand].T,
                memb[cand].astype(float),
            ]
        )
        for cls in _classes(keys):
            members = cand[cls]
            lat_c = lat[:, members[0]]
            values = np.unique(lat_c[np.isfinite(lat_c)])
            for g1, g2 in itertools.pairwise(members):
                # "available within v" of g1 >= that of g2 for every level v of the class
                for v in values:
                    srv = np.flatnonzero(lat_c <= v)
                    r = ex.add_rows(0.0, np.inf, 1)
                    ex.x_entries(np.repeat(r, len(srv)), pair_id[srv, g1], 1.0)
                    ex.x_entries(np.repeat(r, len(srv)), pair_id[srv, g2], -1.0)
                    n_exp_rows += 1
    ex.info["sym"] = {"server_rows": n_srv_rows, "expert_rows": n_exp_rows}


def _envelope(hi: np.ndarray) -> list[tuple[float, float]]:
    """Upper concave envelope of the points (b, hi[b]), b = 0..B, as (slope, intercept) pieces.

    ``hi`` is non-decreasing, so every slope is >= 0 and the minimum of the pieces is a
    non-decreasing concave function >= hi on [0, B] (also beyond B, where it is >= hi[B]).
    """
    hull: list[int] = []
    for b in range(len(hi)):
        while len(hull) >= 2:
            b1, b2 = hull[-2], hull[-1]
            # drop b2 when it lies on or below the chord b1 -> b
            if (hi[b2] - hi[b1]) * (b - b1) <= (hi[b] - hi[b1]) * (b2 - b1) + 1e-15:
                hull.pop()
            else:
                break
        hull.append(b)
    pieces = []
    for b1, b2 in itertools.pairwise(hull):
        slope = max((hi[b2] - hi[b1]) / (b2 - b1), 0.0)
        if slope < 1e-9:  # float noise: solvers drop such coefficients, so make the piece flat
            pieces.append((0.0, float(hi[b1] + slope * (len(hi) - 1 - b1))))
        else:
            pieces.append((slope, float(hi[b1] - slope * b1)))
    pieces.append((0.0, float(hi[-1])))
    return pieces


def _profile_start(inst: Instance, cm: Any, profiles: list) -> np.ndarray:
    """A feasible placement to start the MILP from (top-down nested chains).

    From the slowest level down, each level picks C[l, j] inside C[l, j+1] by the (max,+) DP
    over per-layer lower profiles of the sets still inside (greedy completion, or the proven
    profile's witness when it lies inside), with the weights of that level (of the nearest
    lower level with weight when it has none). Nested with prefix budgets, hence realizable
    (:func:`moebench.exact.chain.model.chains_to_placement`).
    """
    from moebench.exact.chain.model import chains_to_placement
    from moebench.exact.chain.profiles import combine, greedy_chain

    n_lv = len(cm.prefix)
    allowed = [np.ones(a.shape[1], bool) for a in cm.members]
    chains: list[list[np.ndarray]] = [[] for _ in range(n_lv)]
    for j in range(n_lv - 1, -1, -1):
        pos = [jj for jj in range(j + 1) if cm.weights[:, jj].max() > 0]
        if not pos:
            chains[j] = [np.zeros_like(al) for al in allowed]
            continue
        w = cm.weights[:, pos[-1]]
        budget = int(cm.prefix[j])
        los, wits = [], []
        for layer, (a, p) in enumerate(zip(cm.members, cm.probs)):
            inside = ~(a & ~allowed[layer][None, :]).any(axis=1)
            bmax = int(min(budget, allowed[layer].sum()))
            lo, wit = greedy_chain(a[inside], p[inside], bmax)
            pr = profiles[layer]
            for b in range(min(bmax, pr.bmax) + 1):
                pw = pr.witness[b]
                if pr.lo[b] > lo[b] and not np.any(pw & ~allowed[layer]):
                    lo[b], wit[b] = pr.lo[b], pw
            los.append(w[layer] * np.maximum.accumulate(lo))
            wits.append(wit)
        _, alloc = combine(los, budget)
        chains[j] = [wits[layer][int(alloc[layer])] & allowed[layer] for layer in range(cm.L)]
        allowed = [c.copy() for c in chains[j]]
    return chains_to_placement(inst, cm, chains)


def _profile(inst: Instance, ex: Extra, deadline: float | None) -> None:
    """``profile`` (F-cover, chain-reducible instances): per-layer profile cuts and level DP rows.

    For layer l and a level v (a latency of its servers below the fallback), let g = sum_S pi_S
    a[S, v] (mass of the layer's sets covered within v), count = number of layer-l binaries on
    servers with latency <= v, and B = slots of those servers. Every integer solution has
    g <= V_l(|C|) <= hi_l(|C|) <= hi_l(count) (C = experts available within v; |C| <= count,
    hi a proven non-decreasing upper profile), so g <= env(count) for the concave envelope of
    hi on [0, B]; and per level sum_l w_l g_l <= max {sum_l w_l hi_l(b_l) : sum b_l <= B}.
    """
    from moebench.exact.chain.model import chain_model
    from moebench.exact.chain.profiles import LayerProfile, certify_level, combine

    try:
        cm = chain_model(inst)
    except NotApplicableError as exc:
        ex.info["profile"] = f"not applied: {exc}"
        return
    cs, p = ex.cs, ex.pairs
    t0 = time.monotonic()
    layer_of_set = inst.set_layer
    a_layer = layer_of_set[cs.a_set]
    pair_layer = inst.layer_of[p.expert]
    pair_lat = inst.latency[p.server, p.expert]
    # per layer: its levels (value, chain position j = last server of the tie group, budget P_j)
    levels: list[list[tuple[float, int, int]]] = []
    for layer in range(inst.L):
        vals = np.unique(pair_lat[pair_layer == layer])
        lv = []
        t_l = inst.latency[cm.order, inst.expert_offset[layer]]
        for v in vals:
            j = int(np.flatnonzero(t_l <= v).max())
            lv.append((float(v), j, int(cm.prefix[j])))
        levels.append(lv)
    profiles = []
    for layer in range(inst.L):
        bmax = max((b for _, _, b in levels[layer]), default=0)
        profiles.append(LayerProfile(cm.members[layer], cm.probs[layer], bmax, use_lp=True, deadline=deadline))
    # refine the profile entries each level's DP uses (certify_level), heaviest level first, each
    # level with a share of the time left proportional to its weight
    order = sorted(cm.levels.tolist(), key=lambda j: -float(cm.weights[:, j].sum()))
    wsum = [float(cm.weights[:, j].sum()) for j in order]
    for i, j in enumerate(order):
        frac = wsum[i] / max(sum(wsum[i:]), 1e-300)
        share = None if deadline is None else time.monotonic() + max(deadline - time.monotonic(), 0.0) * frac
        certify_level(profiles, cm.weights[:, j], int(cm.prefix[j]), deadline=share, node_limit=PROFILE_NODES)
    ex.start = _profile_start(inst, cm, profiles)
    # the cuts
    n_env = n_dp = 0
    his = []
    for layer, prof in enumerate(profiles):
        bmax = max((b for _, _, b in levels[layer]), default=0)
        hi = np.full(bmax + 1, float(cm.probs[layer].sum()))
        hi[: prof.bmax + 1] = prof.hi[: bmax + 1]
        his.append(hi)
    dp_terms: dict[int, list[tuple[int, float]]] = {}
    for layer in range(inst.L):
        for v, j, budget in levels[layer]:
            sel_a = np.flatnonzero((a_layer == layer) & (cs.a_value == v))
            sel_x = np.flatnonzero((pair_layer == layer) & (pair_lat <= v))
            if len(sel_a) == 0:
                continue
            pi = inst.probs[cs.a_set[sel_a]]
            for slope, icpt in _envelope(his[layer][: budget + 1]):
                r = ex.add_rows(-np.inf, icpt + 1e-12, 1)
                ex.a_entries(np.repeat(r, len(sel_a)), sel_a, pi)
                if slope > 0:
                    ex.x_entries(np.repeat(r, len(sel_x)), sel_x, -slope)
                n_env += 1
            w = float(cm.weights[layer, j])
            if w > 0:
                dp_terms.setdefault(j, []).append((layer, w))
    for j, terms in sorted(dp_terms.items()):
        budget = int(cm.prefix[j])
        best, _ = combine([w * his[layer][: budget + 1] for layer, w in terms], budget)
        idx, coef = [], []
        for layer, w in terms:
            v = float(inst.latency[cm.order[j], inst.expert_offset[layer]])
            sel_a = np.flatnonzero((a_layer == layer) & (cs.a_value == v))
            idx.append(sel_a)
            coef.append(w * inst.probs[cs.a_set[sel_a]])
        if sum(len(i) for i in idx) == 0:
            continue
        r = ex.add_rows(-np.inf, float(best[budget]) * (1 + 1e-9) + 1e-12, 1)
        ex.a_entries(np.repeat(r, sum(len(i) for i in idx)), np.concatenate(idx), np.concatenate(coef))
        n_dp += 1
    # bound-levels (docs/certify.md section 3): R* <= sum_j max {sum_l w[l,j] hi_l(b_l) : sum b_l <= P_j},
    # every layer's profile padded with its total mass beyond the budgets it was built for
    top = int(cm.prefix.max(initial=0))
    padded = []
    for layer, hi in enumerate(his):
        full = np.full(top + 1, float(cm.probs[layer].sum()))
        full[: min(len(hi), top + 1)] = hi[: top + 1]
        padded.append(full)
    ex.gain_bound = 0.0
    for j in cm.levels.tolist():
        budget = int(cm.prefix[j])
        best, _ = combine([w * h[: budget + 1] for w, h in zip(cm.weights[:, j], padded)], budget)
        ex.gain_bound += float(best[budget])
    ex.gain_bound = ex.gain_bound * (1 + 1e-9) + 1e-12
    exact = sum(int(np.sum(pr.hi - pr.lo <= 1e-11)) for pr in profiles)
    ex.info["profile"] = {
        "level_bound": ex.gain_bound,
        "envelope_rows": n_env,
        "level_rows": n_dp,
        "budgets_exact": exact,
        "budgets": int(sum(pr.bmax + 1 for pr in profiles)),
        "nodes": int(sum(pr.nodes for pr in profiles)),
        "seconds": round(time.monotonic() - t0, 3),
    }


def strengthen_model(inst: Instance, formulation: str, names: tuple[str, ...], deadline: float | None = None) -> Extra:
    """Apply the strengthenings ``names`` for ``formulation`` (see docs/milp.md for validity).

    Parameters
    ----------
    inst
        The instance.
    formulation
        ``assign``, ``cover`` or ``k1``.
    names
        Strengthenings (from :func:`parse_strengthen`).
    deadline
        ``time.monotonic()`` after which ``profile`` stops refining its profiles (cuts stay valid);
        default: :data:`PROFILE_MAX_SECONDS` from now.

    Returns
    -------
    Extra
    """
    if deadline is None:
        deadline = time.monotonic() + PROFILE_MAX_SECONDS
    ex = Extra(names=tuple(names), pairs=kept_pairs(inst))
    if "prune" in names:
        _prune(inst, ex, formulation)
    if formulation == "cover" and ex.cs is None:
        ex.cs = cover_structure(inst, ex.pairs)
    if "slots" in names:
        s = equal_size(inst)
        ex.slot_size = s
        ex.info["slots"] = "capacity rows in expert counts" if s is not None else "not applied: unequal sizes"
    if "nodup" in names:
        _nodup(inst, ex)
    if "sym" in names:
        _sym(inst, ex)
    if "profile" in names:
        if formulation != "cover":
            ex.info["profile"] = f"not applied: needs formulation cover, not {formulation}"
        else:
            _profile(inst, ex, deadline)
    return ex
