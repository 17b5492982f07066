"""The shared driver of the exact back ends ``milp-highs``, ``milp-pyomo`` and ``cpsat``.

One pipeline for every solver::

    resolve options -> strengthen -> build -> time limit -> stream the start -> solve (streaming
    incumbents) -> one normalized SolverResult -> Status -> safe bound and tolerance policy

A solver module (:mod:`~moebench.exact.highs`, :mod:`~moebench.exact.cpsat`,
:mod:`~moebench.exact.pyomo_model`) only builds its model and solves it: it implements
:class:`Backend` and returns a :class:`SolverResult` whose bound is already *safe* (its own
tolerances and any rounding of its model added, docs/tolerances.md). Everything else happens
here, once:

* the status mapping (solver said optimal / stopped at a limit / infeasible / failed);
* the tolerance policy of :mod:`moebench.tolerances`: a solver's ``optimal`` stands only when
  the safe bound is within ``tolerance`` (1e-9, or the relative gap the user asked for) of the
  gain the evaluator computes for its placement; otherwise the result is ``feasible`` (or
  ``time-limit``) with that bound. Conversely a stopped solve whose incumbent meets the bound
  (e.g. the ``bound-levels`` bound of the strengthening ``profile``) is ``optimal``;
* a solver bound below the gain of a placement known here (the incumbent, the start placement)
  is rejected (``info["rejected_bound"]``) and the trivial / strengthening bound is used instead;
* ``Solution.tolerance`` records the relative tolerance the status and bound hold to.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from moebench.errors import InputError
from moebench.evaluate import empty_placement, evaluate
from moebench.exact.formulations import Extra, check_formulation, trivial_gain_bound
from moebench.exact.profiles import Profile, load_profile
from moebench.exact.strengthen import PROFILE_MAX_SECONDS, PROFILE_TIME_SHARE, parse_strengthen, strengthen_model
from moebench.instance import Instance
from moebench.methods import Solution, SolveRequest, Status
from moebench.tolerances import OPTIMAL_RTOL, bound_below, proven

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

    @property
    def tolerance(self) -> float:
        """The relative gain tolerance an ``optimal`` status holds to (the policy's, or the looser gap asked for)."""
        return max(OPTIMAL_RTOL, self.mip_rel_gap)

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


def check_options(options: Mapping[str, Any], backend: str) -> Resolved:
    """Merge defaults < profile < explicit ``options`` and check them; needs no instance, so a
    suite runs it before any work (the ``Method.check_options`` hook of the exact back ends).

    Raises
    ------
    InputError
        Bad option values or profile, or an unknown formulation.
    """
    o = options
    formulation = str(o.get("formulation") or DEFAULT_FORMULATION)
    check_formulation(None, formulation)
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


def solver_time_limit(req: SolveRequest) -> float | None:
    """Seconds left for the solver itself (the harness enforces the wall clock anyway)."""
    rem = req.remaining()
    return None if rem is None else max(0.05, rem)


def tighter_bound(bound: float | None, extra: float | None) -> float | None:
    """The smaller of two upper bounds on the optimal gain (None = no bound)."""
    if bound is None:
        return extra
    return bound if extra is None else min(bound, extra)


class Stream:
    """Streams incumbents to ``SolveRequest.on_incumbent`` with the best safe bound known.

    Parameters
    ----------
    req
        The request (nothing is sent when it has no ``on_incumbent``).
    bound
        A safe bound known before solving (trivial / strengthening bound); every streamed bound
        is at most it.
    """

    def __init__(self, req: SolveRequest, bound: float | None) -> None:
        self.req = req
        self.bound = bound

    @property
    def active(self) -> bool:
        """True when someone listens."""
        return self.req.on_incumbent is not None

    def __call__(self, x: np.ndarray, safe_bound: float | None) -> None:
        """Send placement ``x`` with ``safe_bound`` (or the known bound when that is smaller or None)."""
        if self.req.on_incumbent is not None:
            b = safe_bound if safe_bound is not None and np.isfinite(safe_bound) else None
            self.req.on_incumbent(x, tighter_bound(b, self.bound))


@dataclass
class SolverResult:
    """What one solver run produced, in the driver's terms (one shape for every solver).

    Attributes
    ----------
    native_status : str
        The solver's own status name.
    optimal : bool
        The solver claims to have proven optimality (within the gaps it was given).
    time_limit : bool
        The solver stopped at a limit (time, nodes, interrupt).
    infeasible : bool
        The solver declared the model infeasible (a bug: caching nothing is feasible).
    placement : ndarray of bool or None
        The incumbent placement (N, G), None when there is none.
    solver_latency : float or None
        The solver's own value of Lat(placement) (slack removed, see the solver modules).
    bound : float or None
        A *safe* upper bound on the optimal gain (solver tolerances and model rounding added).
    solve_time : float
        Seconds in the solver.
    solver, version : str
        Solver identification.
    options : dict
        Further options actually used (stored with the result).
    info : dict
        Anything else worth recording.
    error : str or None
        Why the solver failed, for results without a placement.
    """

    native_status: str
    optimal: bool = False
    time_limit: bool = False
    infeasible: bool = False
    placement: np.ndarray | None = None
    solver_latency: float | None = None
    bound: float | None = None
    solve_time: float = 0.0
    solver: str = ""
    version: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Backend(Protocol):
    """What a solver module provides to the driver."""

    #: Profile kind (``"highs"`` or ``"cpsat"``).
    profile_kind: str

    def build(self, inst: Instance, opt: Resolved, ex: Extra) -> Any:
        """Build the solver's model of ``opt.formulation`` with the strengthenings ``ex``."""
        ...

    def solve(
        self, model: Any, inst: Instance, opt: Resolved, req: SolveRequest, limit: float | None, stream: Stream
    ) -> SolverResult:
        """Solve ``model`` within ``limit`` seconds, streaming incumbents through ``stream``."""
        ...


def run_exact(inst: Instance, req: SolveRequest, backend: Backend) -> Solution:
    """Run one exact back end on ``inst`` (see the module docstring).

    Raises
    ------
    InputError
        Bad option values or profile.
    NotApplicableError
        ``formulation = k1`` on an instance with K != 1.
    """
    opt = check_options(req.options, backend.profile_kind)
    check_formulation(inst, opt.formulation)
    t0 = time.perf_counter()
    # a killed solve always has a placement and a bound: the empty one and the trivial bound first
    stream = Stream(req, trivial_gain_bound(inst))
    stream(empty_placement(inst), None)
    # the strengthening ``profile`` refines its per-layer profiles for at most PROFILE_TIME_SHARE of
    # the time left (and PROFILE_MAX_SECONDS)
    rem = req.remaining()
    share = PROFILE_MAX_SECONDS if rem is None else min(PROFILE_MAX_SECONDS, PROFILE_TIME_SHARE * rem)
    ex = strengthen_model(inst, opt.formulation, opt.strengthen, deadline=time.monotonic() + share)
    stream.bound = known = tighter_bound(stream.bound, ex.gain_bound)
    if ex.start is not None:
        stream(ex.start, None)
    model = backend.build(inst, opt, ex)
    build_time = time.perf_counter() - t0
    limit = solver_time_limit(req)
    res = backend.solve(model, inst, opt, req, limit, stream)
    return conclude(inst, opt, ex, res, known, build_time, limit, req)


def conclude(
    inst: Instance,
    opt: Resolved,
    ex: Extra,
    res: SolverResult,
    known_bound: float | None,
    build_time: float,
    limit: float | None,
    req: SolveRequest,
) -> Solution:
    """One :class:`SolverResult` -> a :class:`Solution` with its status, safe bound and tolerance."""
    info = dict(res.info)
    info["native_status"] = res.native_status
    tol = opt.tolerance
    lat0 = inst.empty_latency
    common: dict[str, Any] = dict(
        build_time=build_time,
        solve_time=res.solve_time,
        solver=res.solver,
        solver_version=res.version,
        options={**opt.record(req, limit), **res.options, "strengthen_applied": ex.record()},
        info=info,
        tolerance=tol,
    )
    gains = [] if ex.start is None else [evaluate(inst, ex.start).gain]
    ev = None if res.placement is None else evaluate(inst, res.placement)
    if ev is not None and ev.feasible:
        gains.append(ev.gain)
    bound = res.bound
    if bound is not None and gains and bound_below(bound, max(gains), lat0):
        info["rejected_bound"] = (
            f"the solver's bound {bound!r} is below the gain {max(gains)!r} of a known placement; not used"
        )
        bound = None
    bound = tighter_bound(bound, known_bound)
    if res.placement is None:
        if res.infeasible:
            return Solution(empty_placement(inst), Status.INFEASIBLE, error=f"{res.solver}: model infeasible", **common)
        if res.time_limit:
            return Solution(empty_placement(inst), Status.TIME_LIMIT, bound=bound, **common)
        return Solution(empty_placement(inst), Status.ERROR, error=res.error or res.native_status, **common)
    stopped = Status.TIME_LIMIT if res.time_limit else Status.FEASIBLE
    status = Status.OPTIMAL if res.optimal else stopped
    gain = ev.gain  # a placement was returned, so it was evaluated
    if status == Status.OPTIMAL and not proven(gain, bound, lat0, tol):
        status = stopped
        info["not_proven"] = (
            f"the solver reports optimal, but its safe bound {bound!r} exceeds the gain {gain!r} of its "
            f"placement by more than the tolerance {tol:g} (relative)"
        )
    elif status != Status.OPTIMAL and ev.feasible and proven(gain, bound, lat0, tol):
        status = Status.OPTIMAL
        info["optimal_by"] = "the incumbent meets the safe bound"
    return Solution(res.placement, status, bound=bound, solver_latency=res.solver_latency, **common)
