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
    :data:`~moebench.exact.strengthen.DEFAULT_STRENGTHEN`). What each one added, or why it
    did not apply, is recorded in ``Solution.options["strengthen_applied"]``.

Statuses (one mapping for all three, :mod:`moebench.exact.driver`): ``optimal`` when the safe bound
proves the evaluator's gain of the placement within the tolerance (1e-9 relative, or the looser
``mip_rel_gap`` asked for; docs/tolerances.md), ``time-limit`` with the incumbent and the safe
bound when the solver stopped at its limit, ``feasible`` when it finished but its ``optimal``
cannot be backed, ``infeasible`` if the solver says so (a bug: caching nothing is feasible).
``solver_latency`` is always the solver's own objective converted to a latency, so the harness
checks it against the evaluator.
"""

from __future__ import annotations

from functools import partial

from moebench.exact.cpsat import CpsatBackend
from moebench.exact.driver import COMMON_OPTIONS, DEFAULT_FORMULATION, Backend, check_options, run_exact
from moebench.exact.formulations import FORMULATIONS
from moebench.exact.highs import HighsBackend
from moebench.exact.pyomo_model import PyomoBackend
from moebench.instance import Instance
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, SolveRequest, no_args, register_method

_FORMS = f"formulation {'|'.join(FORMULATIONS)} (default {DEFAULT_FORMULATION}; k1 needs K = 1)"


def _register(
    name: str,
    backend: type[Backend],
    summary: str,
    description: str,
    *,
    extra: tuple[str, ...] = (),
    deterministic: bool = True,
) -> None:
    """Register ``name``: :func:`run_exact` with ``backend``, its options checked against the backend's profiles."""

    def solve(inst: Instance, req: SolveRequest) -> Solution:
        return run_exact(inst, req, backend())

    @register_method(name, summary=f"{summary}; {_FORMS}")
    def build(spec: MethodSpec) -> Method:
        no_args(spec)
        info = MethodInfo(name, "exact", description, deterministic=deterministic)
        check = partial(check_options, backend=backend.profile_kind)
        return Method(info, solve, options=(*COMMON_OPTIONS, *extra), check_options=check)


_register(
    "milp-highs",
    HighsBackend,
    "MILP on HiGHS via highspy, matrices from numpy",
    "F-cover / F-assign / F-k1 MILP passed to HiGHS as arrays in one call",
)
_register(
    "milp-pyomo",
    PyomoBackend,
    "readable Pyomo MILP, HiGHS by default (--solver)",
    "Pyomo models of F-cover / F-assign / F-k1 solved by HiGHS or any installed Pyomo solver",
    extra=("solver",),
)
_register(
    "cpsat",
    CpsatBackend,
    "OR-Tools CP-SAT on an integer-scaled model",
    "CP-SAT on integer-scaled F-cover / F-assign / F-k1 (rounding added to its bound)",
    deterministic=False,
)
