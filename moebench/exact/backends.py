"""Registration of the exact back ends ``milp-highs``, ``milp-pyomo`` and ``cpsat``.

Options (``--formulation``, ``--profile``, ``--solver``, or ``--option key=value``):

``formulation``
    ``cover`` (default), ``assign`` or ``k1`` (K = 1 only, otherwise not applicable).
``profile``
    A solver profile from ``solvers/*.toml`` or a path to one (default ``highs-reference`` for
    the HiGHS back ends, ``cpsat-2core`` for CP-SAT).
``threads``, ``mip_rel_gap``, ``mip_abs_gap``
    Override the profile.
``solver`` (``milp-pyomo`` only)
    Pyomo solver name (default ``highs``).
``strengthen``
    Comma list of strengthenings (``nodup``, ``slots``, ``prune``, ``sym``, ``profile``), ``all``,
    ``none`` or ``default`` (see docs/milp.md; default
    :data:`~moebench.exact.formulations.DEFAULT_STRENGTHEN`). What each one added, or why it
    did not apply, is recorded in ``Solution.options["strengthen_applied"]``.

Statuses: ``optimal`` when the solver proves optimality within the gap tolerance in use (0 for
references), ``time-limit`` with the incumbent and the bound otherwise, ``infeasible`` if the
solver says so (a bug: caching nothing is feasible). ``solver_latency`` is always the solver's
own objective converted to a latency, so the harness checks it against the evaluator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.evaluate import empty_placement
from moebench.exact.formulations import (
    FORMULATIONS,
    PROFILE_MAX_SECONDS,
    PROFILE_TIME_SHARE,
    Extra,
    build_model,
    check_formulation,
    kept_pairs,
    parse_strengthen,
    strengthen_model,
)
from moebench.exact.profiles import Profile, load_profile
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, Status, no_args, register_method

DEFAULT_FORMULATION = "cover"
DEFAULT_PROFILE = {"highs": "highs-reference", "cpsat": "cpsat-2core"}
COMMON_OPTIONS = ("formulation", "profile", "threads", "mip_rel_gap", "mip_abs_gap", "strengthen")


@dataclass
class Resolved:
    """Options after merging method defaults, the profile and explicit options."""

    formulation: str
    profile: Profile
    threads: int
    mip_rel_gap: float
    mip_abs_gap: float | None
    solver_options: dict[str, Any] = field(default_factory=dict)
    solver: str = "highs"
    strengthen: tuple[str, ...] = ()

    def record(self, req: SolveRequest, time_limit: float | None) -> dict[str, Any]:
        """The options actually used, as stored with the result."""
        return {
            "formulation": self.formulation,
            "profile": self.profile.name,
            "threads": self.threads,
            "mip_rel_gap": self.mip_rel_gap,
            "mip_abs_gap": self.mip_abs_gap,
            "seed": req.seed,
            "time_limit": time_limit,
            "solver_options": dict(self.solver_options),
            "strengthen": ",".join(self.strengthen) or "none",
        }


def _number(raw: Any, key: str, kind: type, lo: float) -> Any:
    try:
        v = kind(raw)
    except (TypeError, ValueError):
        raise InputError(f"{key} must be a {kind.__name__}, got {raw!r}", where=key) from None
    if not v >= lo:
        raise InputError(f"{key} must be >= {lo}, got {v}", where=key)
    return v


def resolve_options(inst: Instance, req: SolveRequest, backend: str) -> Resolved:
    """Merge defaults < profile < explicit options and check them.

    Raises
    ------
    InputError
        Bad option values or profile.
    NotApplicableError
        ``formulation = k1`` on an instance with K != 1.
    """
    o = req.options
    formulation = str(o.get("formulation") or DEFAULT_FORMULATION)
    check_formulation(inst, formulation)
    profile = load_profile(str(o.get("profile") or DEFAULT_PROFILE[backend]), backend=backend)
    merged = {"threads": 1, "mip_rel_gap": 0.0, "mip_abs_gap": None, **profile.options}
    for key in ("threads", "mip_rel_gap", "mip_abs_gap"):
        if o.get(key) is not None:
            merged[key] = o[key]
    return Resolved(
        formulation=formulation,
        profile=profile,
        threads=_number(merged["threads"], "threads", int, 1),
        mip_rel_gap=_number(merged["mip_rel_gap"], "mip_rel_gap", float, 0.0),
        mip_abs_gap=None if merged["mip_abs_gap"] is None else _number(merged["mip_abs_gap"], "mip_abs_gap", float, 0),
        solver_options=dict(profile.solver),
        solver=str(o.get("solver") or "highs"),
        strengthen=parse_strengthen(o.get("strengthen")),
    )


def strengthen_for(inst: Instance, req: SolveRequest, opt: Resolved) -> Extra:
    """The strengthenings of ``opt`` for ``inst``; ``profile`` refines its per-layer profiles for at
    most PROFILE_TIME_SHARE of the time left (and PROFILE_MAX_SECONDS)."""
    rem = req.remaining()
    share = PROFILE_MAX_SECONDS if rem is None else min(PROFILE_MAX_SECONDS, PROFILE_TIME_SHARE * rem)
    return strengthen_model(inst, opt.formulation, opt.strengthen, deadline=time.monotonic() + share)


def solver_time_limit(req: SolveRequest) -> float | None:
    """Seconds left for the solver itself (the harness enforces the wall clock anyway)."""
    rem = req.remaining()
    return None if rem is None else max(0.05, rem)


def trivial_gain_bound(inst: Instance) -> float:
    """A valid upper bound on the optimal gain: every expert at its best possible latency at once."""
    best = kept_pairs(inst).best
    return float(inst.probs @ (inst.base_set_latency - best[inst.sets].max(axis=1)))


def stream_start(
    inst: Instance, req: SolveRequest, extra_bound: float | None = None, start: np.ndarray | None = None
) -> float:
    """Stream the empty placement (or ``start``) with the trivial bound (or the smaller
    ``extra_bound``), so a killed solve always has both; returns that bound."""
    bound = tighter_bound(trivial_gain_bound(inst), extra_bound)
    if req.on_incumbent is not None:
        req.on_incumbent(empty_placement(inst) if start is None else start, bound)
    return bound


def tighter_bound(bound: float | None, extra: float | None) -> float | None:
    """The smaller of two upper bounds on the optimal gain (None = no bound)."""
    if bound is None:
        return extra
    return bound if extra is None else min(bound, extra)


def proven_by_bound(gain: float, bound: float | None, opt: Resolved) -> bool:
    """True when an incumbent's gain meets a proven bound within the gap tolerances in use
    (e.g. the profile level bound of the strengthening ``profile``, when the solver stopped early)."""
    if bound is None:
        return False
    tol = max(opt.mip_rel_gap * abs(bound), opt.mip_abs_gap or 0.0, 1e-9 * max(1.0, abs(bound)))
    return gain >= bound - tol


def promote_if_proven(status: Status, gain: float, bound: float | None, opt: Resolved, info: dict) -> Status:
    """``optimal`` (recorded in ``info["optimal_by"]``) when a stopped solve's incumbent meets the
    proven bound; otherwise ``status`` unchanged."""
    if status != Status.OPTIMAL and proven_by_bound(gain, bound, opt):
        info["optimal_by"] = "profile level bound"
        return Status.OPTIMAL
    return status


def solve_milp_highs(inst: Instance, req: SolveRequest) -> Solution:
    """``milp-highs``: build the sparse model with numpy and solve it with highspy."""
    from moebench.exact import highs

    opt = resolve_options(inst, req, "highs")
    t0 = time.perf_counter()
    model = build_model(inst, opt.formulation, ex=strengthen_for(inst, req, opt))
    build_time = time.perf_counter() - t0
    limit = solver_time_limit(req)
    on_inc = None
    if req.on_incumbent is not None:
        cb, trivial = req.on_incumbent, stream_start(inst, req, model.extra_bound, model.start)

        def on_inc(v: np.ndarray, dual: float) -> None:
            cb(model.decode(v), min(trivial, model.gain_bound(dual)) if np.isfinite(dual) else trivial)

    out = highs.run_highs(
        model,
        threads=opt.threads,
        time_limit=limit,
        mip_rel_gap=opt.mip_rel_gap,
        mip_abs_gap=opt.mip_abs_gap,
        seed=req.seed,
        solver_options=opt.solver_options,
        on_incumbent=on_inc,
        start=None if model.start is None else model.encode(model.start),
    )
    info = {"model": model.stats, **out.info, "mip_objective": out.objective, "mip_gap": out.gap}
    common = dict(
        build_time=build_time,
        solve_time=out.solve_time,
        solver="highs",
        solver_version=highs.version(),
        options={**opt.record(req, limit), "strengthen_applied": model.stats.get("strengthen", {})},
        info=info,
    )
    bound = tighter_bound(None if out.dual_bound is None else model.gain_bound(out.dual_bound), model.extra_bound)
    if out.solution is None:
        if out.info["infeasible"]:
            return Solution(empty_placement(inst), Status.INFEASIBLE, error="HiGHS: model infeasible", **common)
        if out.info["time_limit"]:
            return Solution(empty_placement(inst), Status.TIME_LIMIT, bound=bound, **common)
        return Solution(empty_placement(inst), Status.ERROR, error=f"HiGHS: {out.model_status}", **common)
    status = Status.OPTIMAL if out.info["optimal"] else Status.TIME_LIMIT if out.info["time_limit"] else Status.FEASIBLE
    status = promote_if_proven(status, inst.empty_latency - model.latency(out.polished), bound, opt, info)
    return Solution(
        model.decode(out.solution),
        status,
        bound=bound,
        solver_latency=model.latency(out.polished),
        **common,
    )


def solve_milp_pyomo(inst: Instance, req: SolveRequest) -> Solution:
    """``milp-pyomo``: see :mod:`moebench.exact.pyomo_model`."""
    from moebench.exact.pyomo_model import solve_pyomo

    return solve_pyomo(inst, req, resolve_options(inst, req, "highs"))


def solve_cpsat(inst: Instance, req: SolveRequest) -> Solution:
    """``cpsat``: see :mod:`moebench.exact.cpsat`."""
    from moebench.exact.cpsat import solve_cpsat as run

    return run(inst, req, resolve_options(inst, req, "cpsat"))


_FORMS = f"formulation {'|'.join(FORMULATIONS)} (default {DEFAULT_FORMULATION}; k1 needs K = 1)"


@register_method("milp-highs", summary=f"MILP on HiGHS via highspy, matrices from numpy; {_FORMS}")
def _build_highs(spec: MethodSpec) -> Method:
    no_args(spec)
    info = MethodInfo(
        "milp-highs",
        "exact",
        "F-cover / F-assign / F-k1 MILP passed to HiGHS as arrays in one call",
        deterministic=True,
    )
    return Method(info, solve_milp_highs, options=COMMON_OPTIONS)


@register_method("milp-pyomo", summary=f"readable Pyomo MILP, HiGHS by default (--solver); {_FORMS}")
def _build_pyomo(spec: MethodSpec) -> Method:
    no_args(spec)
    info = MethodInfo(
        "milp-pyomo",
        "exact",
        "Pyomo models of F-cover / F-assign / F-k1 solved by HiGHS or any installed Pyomo solver",
        deterministic=True,
    )
    return Method(info, solve_milp_pyomo, options=(*COMMON_OPTIONS, "solver"))


@register_method("cpsat", summary=f"OR-Tools CP-SAT on an integer-scaled model; {_FORMS}")
def _build_cpsat(spec: MethodSpec) -> Method:
    no_args(spec)
    info = MethodInfo(
        "cpsat",
        "exact",
        "CP-SAT on integer-scaled F-cover / F-assign / F-k1 (optimal up to a stated rounding bound)",
        deterministic=False,
    )
    return Method(info, solve_cpsat, options=COMMON_OPTIONS)
