"""Classic knapsack problems as moebench instances: the oracles of the exact back ends' tests.

Problems whose optima are published (or computed by an independent dedicated solver) are
encoded as placement instances with the same optimum, so that every exact back end can be
checked against a value it did not compute (tests/test_published_optima.py,
benchmarks/published_optima.py).

0/1 knapsack (profits ``p``, weights ``w``, capacity ``c``) -> K = 1, one layer, one server:
    expert i has size ``w_i``, fallback latency 1 and latency 0 on the server; its singleton
    activation set has count ``p_i``. The gain of a placement is ``sum_{i cached} p_i / sum(p)``,
    so the optimal gain is ``OPT / sum(p)``.
Quadratic knapsack (profit matrix ``P``, symmetric, ``P[i, i]`` the item's own profit) ->
    K = 2, one layer, one server, ``n + 1`` experts: the last one is a dummy with fallback 0
    (always available) and a size larger than the capacity (never cached). Set ``{i, j}`` has
    count ``P[i, j]`` and set ``{i, dummy}`` count ``P[i, i]``; a set gains 1 exactly when all
    its real members are cached, so the optimal gain is ``OPT / (sum_{i<=j} P[i, j])``.

Generators follow D. Pisinger, "Where are the hard knapsack problems?", Computers & Operations
Research 32(9), 2005 (instance types 1-6 and 9, capacity ``h / (H + 1) * sum(w)``) and, for the
quadratic knapsack, Gallo, Hammer and Simeone (1980) as used by Billionnet and Soutif (2004):
density ``d`` percent of non-zero profits, uniform in [1, 100], weights uniform in [1, 50],
capacity uniform in [50, sum(w)]. Readers parse the usual text formats of the published sets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from moebench.errors import InputError
from moebench.instance import Instance, LayerSpec, build_instance

#: Pisinger's instance types implemented by :func:`pisinger_knapsack`.
PISINGER_TYPES = {
    1: "uncorrelated",
    2: "weakly correlated",
    3: "strongly correlated",
    4: "inverse strongly correlated",
    5: "almost strongly correlated",
    6: "subset sum",
    9: "uncorrelated, similar weights",
}


def knapsack_instance(name: str, profits: np.ndarray, weights: np.ndarray, capacity: float) -> Instance:
    """The 0/1 knapsack ``max p x, w x <= c`` as a K = 1 single-server instance (module docstring).

    Items with profit 0 get no activation set (they cannot change the gain).
    """
    p = np.asarray(profits, dtype=np.int64)
    w = np.asarray(weights, dtype=float)
    if p.ndim != 1 or p.shape != w.shape or len(p) == 0:
        raise InputError("profits and weights must be non-empty vectors of one length", where=name)
    if np.any(p < 0) or np.any(w <= 0):
        raise InputError("profits must be >= 0 and weights > 0", where=name)
    pos = np.flatnonzero(p > 0)
    return _one_server(name, "knapsack", capacity, w, np.ones(len(p)), pos[:, None], p[pos])


def qkp_instance(name: str, profit: np.ndarray, weights: np.ndarray, capacity: float) -> Instance:
    """The quadratic knapsack ``max x' P x (upper triangle), w x <= c`` as a K = 2 instance (module docstring)."""
    P = np.asarray(profit, dtype=np.int64)
    w = np.asarray(weights, dtype=float)
    n = len(w)
    if P.shape != (n, n) or n == 0:
        raise InputError("the profit matrix must be n x n for n weights", where=name)
    if np.any(P < 0) or np.any(w <= 0):
        raise InputError("profits must be >= 0 and weights > 0", where=name)
    iu, ju = np.triu_indices(n, k=1)
    pair = np.maximum(P[iu, ju], P[ju, iu])
    diag = np.diag(P)
    sets = np.concatenate([np.stack([iu, ju], axis=1), np.stack([np.arange(n), np.full(n, n)], axis=1)])
    counts = np.concatenate([pair, diag]).astype(float)
    keep = counts > 0
    size = np.append(w, float(capacity) + float(w.max()) + 1.0)  # the dummy never fits
    return _one_server(name, "qkp", capacity, size, np.append(np.ones(n), 0.0), sets[keep], counts[keep])


def _one_server(
    name: str,
    family: str,
    capacity: float,
    size: np.ndarray,
    fallback: np.ndarray,
    sets: np.ndarray,
    profit: np.ndarray,
) -> Instance:
    """One layer on one server at latency 0, the sets weighted by their (positive) profits."""
    layer = LayerSpec(size, np.zeros((1, len(size))), fallback, sets, profit.astype(float), counts=True)
    meta = {"family": family, "profit_total": int(profit.sum())}
    return build_instance(name, sets.shape[1], [float(capacity)], [layer], meta=meta)


def optimal_gain(inst: Instance, optimum: float) -> float:
    """The optimal gain of an encoded instance whose problem optimum is ``optimum``."""
    return float(optimum) / float(inst.meta["profit_total"])


def pisinger_knapsack(
    n: int, r: int, kind: int, rng: np.random.Generator, h: int = 1, series: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(profits, weights, capacity)`` of Pisinger's type ``kind`` with range ``r`` (see module docstring).

    Parameters
    ----------
    n
        Number of items.
    r
        Range of the coefficients (weights up to ``r``).
    kind
        A key of :data:`PISINGER_TYPES`.
    rng
        Random generator.
    h, series
        Instance ``h`` of a series of ``series``: capacity ``floor(h / (series + 1) * sum(w))``.
    """
    if kind not in PISINGER_TYPES:
        raise InputError(f"unknown Pisinger type {kind}; known: {sorted(PISINGER_TYPES)}", where="kind")
    w = rng.integers(1, r + 1, n)
    ten = r // 10
    if kind == 1:
        p = rng.integers(1, r + 1, n)
    elif kind == 2:
        p = np.maximum(1, w + rng.integers(-ten, ten + 1, n))
    elif kind == 3:
        p = w + ten
    elif kind == 4:
        p = rng.integers(1, r + 1, n)
        w = p + ten
    elif kind == 5:
        p = w + ten + rng.integers(-(r // 500), r // 500 + 1, n)
    elif kind == 6:
        p = w.copy()
    else:  # 9: similar weights
        w = rng.integers(100_000, 100_101, n)
        p = rng.integers(1, 1001, n)
    cap = int(h * int(w.sum()) // (series + 1))
    return p.astype(np.int64), w.astype(np.int64), max(cap, int(w.min()))


def gallo_qkp(n: int, density: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """``(P, w, c)`` of a random quadratic knapsack (Gallo et al.; module docstring); ``density`` in percent."""
    P = np.where(rng.random((n, n)) < density / 100.0, rng.integers(1, 101, (n, n)), 0)
    P = np.triu(P) + np.triu(P, 1).T
    w = rng.integers(1, 51, n)
    cap = int(rng.integers(50, max(51, int(w.sum())) + 1))
    return P.astype(np.int64), w.astype(np.int64), cap


def read_knapsack(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """A 0/1 knapsack: a first line ``n c`` then ``p w`` per item (f1-f10, knapPI files), or a first
    line ``n``, ``p w`` per item and ``c`` last (the layout some mirrors use).

    Raises
    ------
    InputError
        When the numbers do not fit either layout.
    """
    p = Path(path)
    text = p.read_text()
    try:
        v = [int(t) for t in text.split()]
    except ValueError as exc:
        raise InputError(f"not a list of integers: {exc}", file=str(p)) from None
    head = text.split("\n", 1)[0].split()
    if not v or len(v) != 2 + 2 * v[0]:
        raise InputError(f"expected 2 + 2 n numbers for n = {v[0] if v else '?'}, got {len(v)}", file=str(p))
    n = v[0]
    cap, body = (v[1], v[2:]) if len(head) == 2 else (v[-1], v[1:-1])
    arr = np.array(body, dtype=np.int64).reshape(n, 2)
    return arr[:, 0], arr[:, 1], int(cap)


def read_qkp(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """A Billionnet-Soutif quadratic knapsack file: optional name line, ``n``, the ``n`` linear
    profits, the upper triangle row by row, an optional constraint-type ``0``, ``c``, the weights.

    Raises
    ------
    InputError
        When the numbers do not fit the layout.
    """
    p = Path(path)
    lines = p.read_text().split("\n")
    first = lines[0].split()
    if len(first) != 1 or not first[0].isdigit():
        lines = lines[1:]  # the name line
    v = [int(t) for line in lines for t in line.split()]
    n = v[0]
    tri = n * (n - 1) // 2
    rest = v[1 + n + tri :]
    if len(rest) == n + 2 and rest[0] == 0:
        rest = rest[1:]
    if len(rest) != n + 1:
        raise InputError(
            f"expected n + 1 (or n + 2) numbers after the profits for n = {n}, got {len(rest)}", file=str(p)
        )
    P = np.zeros((n, n), dtype=np.int64)
    P[np.diag_indices(n)] = v[1 : 1 + n]
    iu, ju = np.triu_indices(n, k=1)
    P[iu, ju] = v[1 + n : 1 + n + tri]
    P[ju, iu] = P[iu, ju]
    return P, np.array(rest[1:], dtype=np.int64), int(rest[0])
