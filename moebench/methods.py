"""The method registry: exact back ends, approximation algorithms and baselines alike.

A *method* maps an instance to a placement. Each is registered under a base name with a
builder that receives the bracket arguments of the full name, e.g. ``greedy-enum[2]`` or
``sgd-levels[maxconv,eps=0.1]``; a ``+ls`` suffix wraps any method in local search. Every
method declares, as data, its assumptions, its guarantee and whether it is deterministic, so
that the CLI, the runner and the reports treat all methods alike.

Third-party packages add methods through the ``moebench.methods`` entry-point group: the
entry point must name a callable (or module) that registers its methods when imported/called.
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.instance import Instance
from moebench.registry import Registry
from moebench.status import CONDITIONS as CONDITIONS  # re-exported: plugins import them from here
from moebench.status import Status as Status
from moebench.status import check_conditions as check_conditions


@dataclass(frozen=True)
class Guarantee:
    """A proven lower bound on the gain ratio R(method) / R(opt).

    Attributes
    ----------
    ratio : float
        The bound (e.g. ``1 - 1/e``).
    source : str
        The theorem it comes from.
    conditions : tuple of str
        Conditions (keys of :data:`CONDITIONS`) under which the theorem applies; the
        guarantee check in reports only flags instances satisfying all of them.
    """

    ratio: float
    source: str
    conditions: tuple[str, ...] = ()

    def applies(self, inst: Instance) -> bool:
        """True when ``inst`` satisfies every condition of the theorem."""
        return not check_conditions(self.conditions, inst)


@dataclass(frozen=True)
class MethodInfo:
    """What a method declares about itself.

    Attributes
    ----------
    name : str
        Full name including bracket arguments and modifiers.
    kind : str
        ``"exact"``, ``"approximation"``, ``"heuristic"`` or ``"baseline"``.
    summary : str
        One line.
    assumptions : tuple of str
        Conditions required to run at all; outside them the result is NOT_APPLICABLE.
    guarantee : Guarantee or None
        The declared approximation guarantee, if any.
    deterministic : bool
        Same instance and seed give the same placement.
    """

    name: str
    kind: str
    summary: str
    assumptions: tuple[str, ...] = ()
    guarantee: Guarantee | None = None
    deterministic: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        g = self.guarantee
        return {
            "name": self.name,
            "kind": self.kind,
            "summary": self.summary,
            "assumptions": list(self.assumptions),
            "guarantee": None
            if g is None
            else {"ratio": g.ratio, "source": g.source, "conditions": list(g.conditions)},
            "deterministic": self.deterministic,
        }


@dataclass
class SolveRequest:
    """What the harness hands to a method.

    Attributes
    ----------
    time_limit : float or None
        Wall-clock seconds the method may use (the harness enforces it from outside too).
    seed : int
        Random seed (randomized methods and solver seeds).
    options : dict
        Method options (e.g. ``formulation``, ``profile``, ``solver``).
    on_incumbent : callable or None
        Exact methods call it with each improved ``(placement, bound)`` so that a harness that
        has to kill them still reports the best incumbent and bound found.
    """

    time_limit: float | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    on_incumbent: Callable[[np.ndarray, float | None], None] | None = None
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float | None:
        """Seconds left before the time limit (None when unlimited)."""
        if self.time_limit is None:
            return None
        return max(0.0, self.time_limit - (time.monotonic() - self.started))


@dataclass
class Solution:
    """What a method returns. The harness recomputes every objective from ``placement``.

    Attributes
    ----------
    placement : ndarray of bool, shape (N, G)
        The placement (the empty placement for statuses without one).
    status : Status
        See :class:`Status`.
    bound : float or None
        Upper bound on the optimal gain R* proven by the method (exact methods only).
    solver_latency : float or None
        The method's own value of Lat(placement), kept beside the recomputed one.
    build_time, solve_time : float or None
        Seconds spent building the model and solving it (exact methods).
    solver, solver_version : str or None
        Back-end identification.
    options : dict
        The options actually used (threads, seed, gap tolerances, time limit, ...).
    info : dict
        Anything else worth recording (e.g. which per-layer profile was used).
    error : str or None
        Error text for ERROR / UNAVAILABLE / NOT_APPLICABLE statuses.
    tolerance : float or None
        The relative gain tolerance the status and ``bound`` hold to (``optimal`` means proven
        within it, see :mod:`moebench.tolerances`); None for heuristics.
    """

    placement: np.ndarray
    status: Status = Status.FEASIBLE
    bound: float | None = None
    solver_latency: float | None = None
    build_time: float | None = None
    solve_time: float | None = None
    solver: str | None = None
    solver_version: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    tolerance: float | None = None


SolveFn = Callable[[Instance, SolveRequest], Solution]


@dataclass(frozen=True)
class Method:
    """A runnable method: its declaration plus its solve function."""

    info: MethodInfo
    solve: SolveFn
    #: option names the method accepts (others are rejected with a clear error)
    options: tuple[str, ...] = ()
    #: checks option values before anything runs (raises InputError with ``where`` = the option)
    check_options: Callable[[Mapping[str, Any]], None] | None = None

    @property
    def name(self) -> str:
        """Full method name."""
        return self.info.name


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method name: ``base[args,key=value]+modifier``."""

    base: str
    args: tuple[str, ...] = ()
    kwargs: Mapping[str, str] = field(default_factory=dict)
    modifiers: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        """Canonical spelling of the name."""
        inner = [*self.args, *(f"{k}={v}" for k, v in self.kwargs.items())]
        core = self.base + (f"[{','.join(inner)}]" if inner else "")
        return core + "".join(f"+{m}" for m in self.modifiers)


Builder = Callable[[MethodSpec], Method]


@dataclass(frozen=True)
class Registration:
    """A registered base name: its builder and how ``moebench methods`` lists it."""

    base: str
    builder: Builder
    examples: tuple[str, ...]
    summary: str


_BUILTIN_MODULES = (
    "moebench.algorithms.baselines",
    "moebench.algorithms.greedy",
    "moebench.algorithms.sgd",
    "moebench.algorithms.local_search",
    "moebench.exact.bruteforce",
    "moebench.exact.backends",
    "moebench.exact.chain.method",
)
Modifier = Callable[[Method, MethodSpec], Method]
#: Registered base names (filled from the built-in modules and the ``moebench.methods`` plugins).
METHODS: Registry[Registration] = Registry("method", _BUILTIN_MODULES, "moebench.methods")
#: Registered ``+suffix`` modifiers (filled like :data:`METHODS`).
MODIFIERS: Registry[Modifier] = Registry("modifier", _BUILTIN_MODULES, "moebench.methods")


def register_method(
    base: str, *, examples: tuple[str, ...] | None = None, summary: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` under ``base``.

    Parameters
    ----------
    base
        Base name (without brackets), e.g. ``"greedy-enum"``.
    examples
        Full names shown by ``moebench methods`` (default: ``(base,)``).
    summary
        One-line description.
    """

    def deco(builder: Builder) -> Builder:
        reg = Registration(base, builder, tuple(examples or (base,)), summary)
        METHODS.register(base, reg, same=lambda old, new: old.builder is new.builder)
        return builder

    return deco


def register_modifier(name: str) -> Callable[[Modifier], Modifier]:
    """Decorator registering a ``+name`` suffix that wraps any method (e.g. ``+ls``)."""

    def deco(fn: Modifier) -> Modifier:
        MODIFIERS.register(name, fn)
        return fn

    return deco


_NAME_RE = re.compile(r"^(?P<base>[A-Za-z0-9_.+-]+)(?:\[(?P<inner>[^\[\]]*)\])?$")


def parse_method_name(name: str) -> MethodSpec:
    """Parse ``base[args,key=value]+modifier`` into a :class:`MethodSpec`.

    Raises
    ------
    InputError
        When the name is malformed or names no registered method.
    """
    name = name.strip()
    # modifiers are only the registered suffixes: "greedy-ratio+single" is a base name
    mods: list[str] = []
    core = name
    while core not in METHODS:
        mod = next((m for m in MODIFIERS.names() if core.endswith("+" + m) and core[: -len(m) - 1]), None)
        if mod is None:
            break
        mods.insert(0, mod)
        core = core[: -len(mod) - 1]
    match = _NAME_RE.match(core)
    if not match:
        raise InputError(f"malformed method name {name!r} (expected base[args]+modifier)", where="method")
    base = match.group("base")
    if base not in METHODS:
        close = difflib.get_close_matches(base, METHODS.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown method {base!r}{hint}; `moebench methods` lists them", where="method")
    args: list[str] = []
    kwargs: dict[str, str] = {}
    inner = match.group("inner")
    if inner:
        for part in (p.strip() for p in inner.split(",")):
            if not part:
                raise InputError(f"empty argument in {name!r}", where="method")
            if "=" in part:
                k, v = (s.strip() for s in part.split("=", 1))
                kwargs[k] = v
            else:
                args.append(part)
    return MethodSpec(base, tuple(args), kwargs, tuple(mods))


def get_method(name: str) -> Method:
    """Build the method named ``name`` (with its bracket arguments and modifiers).

    Raises
    ------
    InputError
        For unknown names or bad bracket arguments.
    """
    spec = parse_method_name(name)
    reg = METHODS.get(spec.base)
    assert reg is not None  # parse_method_name checked it
    method = reg.builder(MethodSpec(spec.base, spec.args, spec.kwargs))
    for m in spec.modifiers:
        wrap = MODIFIERS.get(m)
        assert wrap is not None
        method = wrap(method, spec)
    return method


def registered() -> list[Registration]:
    """All registered base names, sorted."""
    return [reg for _, reg in METHODS.items()]


def modifiers() -> list[str]:
    """Registered ``+suffix`` modifiers."""
    return MODIFIERS.names()


def method_names() -> list[str]:
    """Every example full name of every registered method."""
    return [ex for reg in registered() for ex in reg.examples]


# ---- helpers for builders ------------------------------------------------------------------
def no_args(spec: MethodSpec) -> None:
    """Reject bracket arguments for methods that take none."""
    if spec.args or spec.kwargs:
        raise InputError(f"method {spec.base!r} takes no bracket arguments", where="method")


def float_arg(spec: MethodSpec, key: str, default: float, *, lo: float, hi: float) -> float:
    """A float keyword bracket argument with range check."""
    raw = spec.kwargs.get(key)
    if raw is None:
        return default
    try:
        v = float(raw)
    except ValueError:
        raise InputError(f"{spec.base}: {key} must be a number, got {raw!r}", where="method") from None
    if not lo < v < hi:
        raise InputError(f"{spec.base}: {key} must be in ({lo}, {hi}), got {v}", where="method")
    return v


def int_arg(raw: str, spec: MethodSpec, what: str, *, lo: int, hi: int) -> int:
    """An integer bracket argument with range check."""
    try:
        v = int(raw)
    except ValueError:
        raise InputError(f"{spec.base}: {what} must be an integer, got {raw!r}", where="method") from None
    if not lo <= v <= hi:
        raise InputError(f"{spec.base}: {what} must be in [{lo}, {hi}], got {v}", where="method")
    return v


OptionCheck = Callable[[Mapping[str, Any]], None]


def number_options(**ranges: tuple[type, float]) -> OptionCheck:
    """A ``Method.check_options`` hook: each named option, where given, must be a number of the
    given type (``int`` or ``float``; numeric text as from ``--option`` is accepted) >= its bound.

    Example: ``number_options(max_moves=(int, 0))``.
    """

    def check(options: Mapping[str, Any]) -> None:
        for key, (kind, lo) in ranges.items():
            if key not in options:
                continue
            raw = options[key]
            try:
                if isinstance(raw, bool):
                    raise ValueError
                v = float(raw)
                if kind is int and not float(v).is_integer():
                    raise ValueError
            except (TypeError, ValueError):
                what = "an integer" if kind is int else "a number"
                raise InputError(f"option {key} must be {what}, got {raw!r}", where=key) from None
            if not (math.isfinite(v) and v >= lo):
                raise InputError(f"option {key} must be >= {lo:g} and finite, got {raw!r}", where=key)

    return check


def both(*checks: OptionCheck | None) -> OptionCheck | None:
    """The ``check_options`` hook running every given hook (None when there is none)."""
    real = [c for c in checks if c is not None]
    if not real:
        return None

    def check(options: Mapping[str, Any]) -> None:
        for c in real:
            c(options)

    return check
