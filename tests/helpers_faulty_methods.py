"""Test-only methods that misbehave, registered on import.

Task children re-import modules (forkserver), so the runner imports this module in every
child: suites list it under ``suite.plugins`` (or the environment variable
``MOEBENCH_PLUGINS`` names it).
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from moebench.evaluate import empty_placement
from moebench.methods import Method, MethodInfo, MethodSpec, Solution, Status, register_method


def _method(name: str, solve, kind: str = "heuristic") -> Method:
    return Method(MethodInfo(name, kind, f"test-only: {name}"), solve)


def _raise(inst, req):
    raise RuntimeError("deliberate failure")


def _hang(inst, req):
    time.sleep(3600)


def _infeasible(inst, req):
    return Solution(np.ones((inst.N, inst.G), dtype=bool))  # everything everywhere: over capacity


def _crash(inst, req):
    os.kill(os.getpid(), signal.SIGKILL)


def _oom(inst, req):
    blob = np.ones(2**33, dtype=np.uint8)  # 8 GiB: beyond the suite's memory limit
    return Solution(blob[:0])


def _slow(inst, req):
    time.sleep(0.15)
    x = empty_placement(inst)
    # deterministic: the cheapest useful expert on server 0 if it fits
    g = int(np.argmin(inst.size))
    if inst.size[g] <= inst.capacity[0]:
        x[0, g] = True
    return Solution(x)


def _bad_bound(inst, req):
    # what cpsat once returned when stopped in presolve: no placement and the bound field's default
    return Solution(empty_placement(inst), Status.TIME_LIMIT, bound=1.25e-07)


def _false_optimal(inst, req):
    # a back end whose "optimal" is wrong: the empty placement, with a bound that agrees with it
    return Solution(empty_placement(inst), Status.OPTIMAL, bound=0.0, tolerance=1e-9)


for _name, _fn in (("test-bad-bound", _bad_bound), ("test-false-optimal", _false_optimal)):

    def _exact_builder(spec: MethodSpec, _n=_name, _f=_fn) -> Method:
        return _method(_n, _f, kind="exact")

    register_method(_name, summary="test-only")(_exact_builder)


for _name, _fn in (
    ("test-raise", _raise),
    ("test-hang", _hang),
    ("test-infeasible", _infeasible),
    ("test-crash", _crash),
    ("test-oom", _oom),
    ("test-slow", _slow),
):

    def _builder(spec: MethodSpec, _n=_name, _f=_fn) -> Method:
        return _method(_n, _f)

    register_method(_name, summary="test-only")(_builder)
