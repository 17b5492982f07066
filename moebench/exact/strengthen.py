"""Strengthenings of the exact formulations (option ``strengthen`` of the MILP / CP-SAT back ends).

Validity and measurements in docs/milp.md: ``nodup`` (at most one copy per expert), ``slots``
(capacity rows in expert counts when sizes are equal), ``prune`` (set levels that cannot fit fixed
to 0, experts that can never matter removed; F-assign gets the matching lower bounds on set
latencies), ``sym`` (interchangeable servers ordered by load, interchangeable experts by latency)
and ``profile`` (F-cover on chain-reducible instances: per-layer profile envelope cuts and
per-level (max,+) DP rows from the proven profiles of :mod:`moebench.exact.chain.profiles`, a start
placement and the ``bound-levels`` bound). :func:`strengthen_model` returns them as an
:class:`~moebench.exact.formulations.Extra` that every back end adds to its own model;
:func:`build_model` composes the two for the sparse (highspy) models.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from moebench.errors import InputError, NotApplicableError
from moebench.exact.formulations import (
    BUILDERS,
    Extra,
    Pairs,
    SparseModel,
    check_formulation,
    cover_structure,
    equal_size,
    kept_pairs,
    pairs_of,
    slot_capacity,
)
from moebench.instance import Instance

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
        useful = np.zeros_like(ex.pairs.useful)
        useful[ex.pairs.server[keep], ex.pairs.expert[keep]] = True
        ex.pairs = pairs_of(inst, useful)
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
        # one label per distinct list of sets (a dense expert x set matrix took 6 GB on a
        # 10,000-item knapsack)
        pos = np.flatnonzero(inst.probs > 0)
        owner, member = np.repeat(pos, inst.K), inst.sets[pos].ravel()
        order = np.lexsort((owner, member))
        owner, member = owner[order], member[order]
        lo, hi = np.searchsorted(member, cand, "left"), np.searchsorted(member, cand, "right")
        labels: dict[bytes, int] = {}
        memb = np.array([labels.setdefault(owner[a:b].tobytes(), len(labels)) for a, b in zip(lo, hi)], float)
        keys = np.hstack(
            [
                inst.size[cand, None],
                inst.fallback[cand, None],
                p.useful[:, cand].T.astype(float),
                lat[:, cand].T,
                memb[:, None],
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
    from moebench.exact.chain.model import chains_to_placement, restricted
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
            inside = restricted(a, allowed[layer])
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


def _padded(hi: np.ndarray, n: int, mass: float) -> np.ndarray:
    """The first ``n`` values of an upper profile ``hi``, padded with the layer's total ``mass``."""
    out = np.full(n, float(mass))
    out[: min(len(hi), n)] = hi[:n]
    return out


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
    bmaxes = [max((b for _, _, b in lv), default=0) for lv in levels]
    profiles = [
        LayerProfile(cm.members[layer], cm.probs[layer], bmaxes[layer], use_lp=True, deadline=deadline)
        for layer in range(inst.L)
    ]
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
    his = [_padded(prof.hi, bmax + 1, p.sum()) for prof, bmax, p in zip(profiles, bmaxes, cm.probs)]
    # per chain position j, the (layer, weight, a columns of level j, their probabilities) of its DP row
    dp_terms: dict[int, list[tuple[int, float, np.ndarray, np.ndarray]]] = {}
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
                dp_terms.setdefault(j, []).append((layer, w, sel_a, pi))
    for j, terms in sorted(dp_terms.items()):
        budget = int(cm.prefix[j])
        best, _ = combine([w * his[layer][: budget + 1] for layer, w, _, _ in terms], budget)
        idx = np.concatenate([sel_a for _, _, sel_a, _ in terms])
        r = ex.add_rows(-np.inf, float(best[budget]) * (1 + 1e-9) + 1e-12, 1)
        ex.a_entries(np.repeat(r, len(idx)), idx, np.concatenate([w * pi for _, w, _, pi in terms]))
        n_dp += 1
    # bound-levels (docs/certify.md section 3): R* <= sum_j max {sum_l w[l,j] hi_l(b_l) : sum b_l <= P_j},
    # every layer's profile padded with its total mass beyond the budgets it was built for
    top = int(cm.prefix.max(initial=0))
    padded = [_padded(hi, top + 1, p.sum()) for hi, p in zip(his, cm.probs)]
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


def build_model(
    inst: Instance,
    formulation: str,
    strengthen: tuple[str, ...] = (),
    deadline: float | None = None,
) -> SparseModel:
    """Build ``formulation`` (``assign``, ``cover`` or ``k1``) for ``inst``.

    ``strengthen`` names strengthenings (:data:`STRENGTHENINGS`; none by default here, the back
    ends default to :data:`DEFAULT_STRENGTHEN`); ``deadline`` (``time.monotonic()``) bounds the
    profile refinement of ``profile``. What each strengthening did is in ``model.stats["strengthen"]``.

    Raises
    ------
    InputError
        For an unknown formulation name.
    NotApplicableError
        For ``k1`` when K != 1.
    """
    check_formulation(inst, formulation)
    return BUILDERS[formulation](inst, strengthen_model(inst, formulation, tuple(strengthen), deadline))
