"""The contract every method must keep, as checks a test suite runs one by one.

Like scikit-learn's ``parametrize_with_checks``, :func:`parametrize_with_checks` turns a list of
method names into one pytest test per (method, check), so one failing check never hides the
others and a plugin author runs the same contract as moebench itself::

    from moebench.testing import parametrize_with_checks

    @parametrize_with_checks(["my-method", "my-method+ls"])
    def test_my_method(method, check):
        check(method)

The checks (:data:`CHECKS`) run each method through the harness on small generated instances of
every generated family and K in (1, 2, 4, 6):

- its declaration is well formed (kind, assumptions and guarantee conditions known, ratio in (0, 1]);
- it is not applicable exactly where its assumptions exclude the instance, and otherwise returns
  an honest status with a placement within the capacities whose gain the evaluator confirms;
- a method declared deterministic gives the same placement twice (exact back ends aside: they
  are tested against each other);
- on instances small enough for brute force, it never beats the optimum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from moebench.evaluate import evaluate
from moebench.families import generate
from moebench.harness import run_method
from moebench.instance import Instance
from moebench.methods import get_method
from moebench.placement import from_triples
from moebench.record import Record
from moebench.status import CONDITIONS, Status, check_conditions

#: Families and K of the contract instances.
FAMILIES = ("uniform", "zipf", "clustered")
KS = (1, 2, 4, 6)
KINDS = ("exact", "approximation", "heuristic", "baseline")


@cache
def contract_instance(family: str, k: int, tiny: bool) -> Instance:
    """A small instance of ``family`` with Top-``k`` sets; ``tiny`` ones are brute-force sized."""
    params = {"K": k, "layers": 1 if tiny else 2, "experts": 7 if tiny else 10, "servers": 2 if tiny else 3}
    params.update({"tokens": 150, "capacity": 0.35, "inter_jitter": 0.3 if k % 2 else 0.0})
    return generate(family, params, seed=k)


def contract_instances(tiny: bool) -> list[Instance]:
    """Every contract instance of one size."""
    return [contract_instance(f, k, tiny) for f in FAMILIES for k in KS]


def _honest(inst: Instance, name: str) -> Record:
    method = get_method(name)
    rec = run_method(inst, name)  # in-process: small instances, no time limit needed
    if check_conditions(method.info.assumptions, inst):
        assert rec.status == Status.NOT_APPLICABLE, (name, inst.name, rec.status, rec.error)
        return rec
    allowed = {Status.OPTIMAL, Status.FEASIBLE} | ({Status.UNAVAILABLE} if method.info.kind == "exact" else set())
    assert rec.status in allowed, (name, inst.name, rec.status, rec.error)
    if rec.status == Status.UNAVAILABLE:
        return rec
    ev = evaluate(inst, from_triples(inst, rec.placement))
    assert ev.feasible, (name, inst.name, ev.violations)
    assert rec.gain is not None and abs(ev.gain - rec.gain) <= 1e-9 * max(1.0, abs(ev.gain)), (name, inst.name)
    assert rec.gain >= -1e-12, (name, inst.name, rec.gain)
    return rec


def check_declaration(name: str) -> None:
    """The method's declaration: its full name, a known kind, known conditions, a ratio in (0, 1]."""
    method = get_method(name)
    info = method.info
    assert info.name == name and info.summary, info
    assert info.kind in KINDS, f"{name}: kind {info.kind!r} is none of {KINDS}"
    assert set(info.assumptions) <= set(CONDITIONS), f"{name}: unknown assumption(s) {info.assumptions}"
    g = info.guarantee
    if g is not None:
        assert 0 < g.ratio <= 1 and g.source, f"{name}: guarantee {g}"
        assert set(g.conditions) <= set(CONDITIONS), f"{name}: unknown guarantee condition(s) {g.conditions}"
    assert all(isinstance(o, str) and o for o in method.options), f"{name}: options {method.options}"


def check_feasible_and_honest(name: str) -> None:
    """Not applicable exactly outside the assumptions; else an honest status and a feasible
    placement whose gain the evaluator confirms (heuristics on both sizes, exact methods on the
    brute-force-sized instances)."""
    sizes = (True,) if get_method(name).info.kind == "exact" else (False, True)
    for tiny in sizes:
        for inst in contract_instances(tiny):
            _honest(inst, name)


def check_deterministic(name: str) -> None:
    """A method declared deterministic gives the same placement twice (exact back ends aside)."""
    method = get_method(name)
    if not method.info.deterministic or method.info.kind == "exact":
        return
    for inst in contract_instances(False):
        a, b = run_method(inst, name), run_method(inst, name)
        assert a.placement == b.placement, (name, inst.name)


def check_never_beats_the_optimum(name: str) -> None:
    """On brute-force-sized instances the gain never exceeds the optimum."""
    for inst in contract_instances(True):
        rec = run_method(inst, name)
        if rec.status in (Status.OPTIMAL, Status.FEASIBLE) and rec.gain is not None:
            best = _optimum(inst)
            assert rec.gain <= best + 1e-6 * max(1.0, best), (name, inst.name, rec.gain, best)


@cache
def _optimum(inst: Instance) -> float:
    rec = run_method(inst, "bruteforce")
    assert rec.status == Status.OPTIMAL and rec.gain is not None, rec.error
    return rec.gain


#: Every check, in the order they are run.
CHECKS: tuple[Callable[[str], None], ...] = (
    check_declaration,
    check_feasible_and_honest,
    check_deterministic,
    check_never_beats_the_optimum,
)


def parametrize_with_checks(names: Sequence[str]) -> Any:
    """A pytest ``parametrize`` mark giving one test per (method, check): arguments ``method`` and ``check``."""
    import pytest

    cases = [(n, c) for n in names for c in CHECKS]
    ids = [f"{n}-{c.__name__.removeprefix('check_')}" for n, c in cases]
    return pytest.mark.parametrize(("method", "check"), cases, ids=ids)
