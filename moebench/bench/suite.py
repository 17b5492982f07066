"""Benchmark suite files (TOML): loading and complete validation before anything runs.

A suite names instances (files, globs, or family generators with parameter grids and seeds),
the methods to benchmark with their options, the exact reference methods, solver profiles,
the wall-clock limit per run, the number of repetitions and adversarial stress searches::

    [suite]
    name = "quick"
    time_limit = 20.0          # seconds per run (a method entry may override it)
    repetitions = 1            # every (instance, method) runs this often, seed = seed + repetition
    seed = 0
    grace = 5.0                # seconds past the limit before the runner kills a run
    memory_limit_mb = 4096     # address-space limit (RLIMIT_AS) of every run, >= 512 (optional)
    plugins = ["my_pkg.methods"]   # modules imported in the runner and in every child
    references = "refs.solu"   # reference file inside the output folder (default: <out>/references.solu)
    max_tasks = 200000         # raise the cap on the number of tasks (default 100000)

    [[instances]]
    files = ["../../instances/*.json.gz"]

    [[instances]]
    family = "clustered"
    seeds = [0, 1]
    params = { layers = 2, experts = 6 }
    grid = { K = [1, 2], capacity = [0.2, 0.4] }   # cartesian product
    # holdout = { which = "test" }  (optional: overrides giving each instance's holdout twin, same
    # family, params and seed; every placement is also evaluated there; moebench.bench.holdout)
    # holdout_tasks = "all"   (optional: also score every placement on the twins of these other
    # tasks, a list or "all"; families with a task parameter, e.g. deepseek-v2-lite-esft)
    # replay = true           (optional: replay the real token paths of every scored token set:
    # tail latency per token; trace families; moebench.replay)

    [profiles.exact-1thread]
    threads = 1

    [[methods]]
    name = "greedy-ratio"

    [[methods]]
    name = "milp-highs"
    options = { formulation = "assign" }
    profile = "exact-1thread"  # merged into options; a name not defined here is passed on
                               # as option profile = "..." (solvers/*.toml)
    time_limit = 60
    instances = ["uniform-*"]  # only instances whose name matches one of these globs

    [[references]]             # exact methods whose best result per instance is the reference
    name = "bruteforce"

    [[stress]]                 # adversarial searches, run as tasks of the suite (moebench.bench.stress_tasks)
    name = "paper-k1-multi"    # optional: file stem of the worst instance (default: derived)
    method = "greedy-enum[2]"
    family = "uniform"
    params = { K = 1, servers = 2 }
    budget = 60                # seconds per seed
    seeds = [0, 1]             # or seed = 0; each seed is one independent search
    reference = "bruteforce"   # exact method giving the optimum (default)
    steps = 200                # hill-climbing steps per restart (default)
    claim = 0.632              # optional: a claim the method does not declare (with claim_source,
    claim_source = "paper"     # and claim_conditions as free text, ';'-separated)

The keys and their types are declared once in :mod:`moebench.schema.config`; this module
checks the rest before any task runs: method names (with a "did you mean"), method options and
their values, solver profiles, families and their parameter ranges (every grid point), seeds,
instance names, the number of tasks (without materializing them). Every error is an
:class:`~moebench.errors.InputError` naming the file, the key path (``methods[2].options``) and
the reason.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.families import Family, get_family
from moebench.instance import Instance, replace_arrays
from moebench.methods import Method, check_conditions, get_method, parse_method_name
from moebench.registry import plugin_modules
from moebench.schema import config
from moebench.stress import SMALL_DEFAULTS

#: Default cap on the number of tasks of a suite (``[suite] max_tasks`` raises it).
MAX_TASKS = 100_000


@dataclass(frozen=True)
class MethodEntry:
    """One ``[[methods]]`` or ``[[references]]`` entry.

    Attributes
    ----------
    name : str
        Method name as written (``sgd-levels[maxconv,eps=0.1]+ls``).
    options : dict
        Method options (profile options merged in).
    time_limit : float
        Wall-clock limit of each run.
    instances : tuple of str
        Instance-name globs the entry is restricted to (empty: all).
    role : str
        ``"method"`` or ``"reference"``.
    """

    name: str
    options: Mapping[str, Any]
    time_limit: float
    instances: tuple[str, ...] = ()
    role: str = "method"

    def applies_to(self, instance_name: str) -> bool:
        """True when the entry runs on ``instance_name``."""
        return not self.instances or any(fnmatch.fnmatchcase(instance_name, p) for p in self.instances)


@dataclass(frozen=True)
class InstanceSource:
    """One ``[[instances]]`` entry: files, or a family with fixed parameters, a grid and seeds."""

    where: str
    files: tuple[str, ...] = ()
    family: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    name: str | None = None
    #: parameter overrides giving each instance's holdout twin (moebench.bench.holdout), or None
    holdout: Mapping[str, Any] | None = None
    #: other tasks whose twins score every placement (moebench.bench.holdout.attach_shift)
    holdout_tasks: tuple[str, ...] = ()
    #: replay the real token paths of every scored token set
    replay: bool = False

    def size(self, suite_path: Path) -> int:
        """How many instances the entry gives (files are globbed, nothing is generated)."""
        if self.files:
            return sum(len(_matches(suite_path, p)) or 1 for p in self.files)
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)


@dataclass(frozen=True)
class StressSearch:
    """One validated ``[[stress]]`` entry: an adversarial search per seed (see :mod:`moebench.stress`).

    The fields are the entry's keys (:class:`moebench.schema.config.StressEntry`, documented in
    this module's docstring), with defaults filled in; ``where`` is its key path (``stress[2]``)
    and ``name`` the file stem of its worst instances (``<name>-s<seed>.json.gz``).
    ``claim_conditions`` is free text: its parts that are condition names of
    :data:`moebench.status.CONDITIONS` are checked on the instances, the rest is asserted.
    """

    where: str
    name: str
    method: str
    family: str
    params: Mapping[str, Any]
    budget: float
    seeds: tuple[int, ...] = (0,)
    reference: str = "bruteforce"
    reference_options: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 200
    claim: float | None = None
    claim_source: str = ""
    claim_conditions: str = ""

    def unit_id(self, seed: int) -> str:
        """Stable id of the search with ``seed``: 16 hex digits over everything that defines it."""
        key = {k: v for k, v in asdict(self).items() if k not in ("where", "seeds")}
        key.update(kind="stress", seed=seed)
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def slug(self, seed: int) -> str:
        """File stem of the worst instance of the search with ``seed``."""
        return f"{self.name}-s{seed}"


@dataclass
class Suite:
    """A validated suite file."""

    path: Path
    name: str
    time_limit: float
    repetitions: int
    seed: int
    grace: float
    memory_limit_mb: int | None
    plugins: tuple[str, ...]
    references_path: Path | None
    sources: list[InstanceSource]
    methods: list[MethodEntry]
    references: list[MethodEntry]
    #: ``[[stress]]`` entries, run as tasks after the method runs
    stress: list[StressSearch] = field(default_factory=list)
    max_tasks: int = MAX_TASKS
    #: the ``[report]`` table (what the report shows), kept as ``report.toml`` beside the results
    report: config.ReportTable | None = None

    def instances(self) -> list[Instance]:
        """Materialize every instance of the suite (files loaded, families generated).

        Raises
        ------
        InputError
            For unreadable files, bad family parameters, or two instances with one name.
        """
        out: list[Instance] = []
        seen: dict[str, str] = {}
        for src in self.sources:
            for inst in materialize(src, self.path):
                if inst.name in seen:
                    raise InputError(
                        f"two instances are named {inst.name!r} (also from {seen[inst.name]}); give them distinct names",
                        file=str(self.path),
                        where=src.where,
                    )
                seen[inst.name] = src.where
                out.append(inst)
        return out

    def task_count(self) -> int:
        """An upper bound on the number of tasks (instance filters of method entries ignored)."""
        instances = sum(src.size(self.path) for src in self.sources)
        runs = instances * (len(self.methods) + len(self.references)) * self.repetitions
        return runs + sum(len(s.seeds) for s in self.stress)


def _err(path: Path, where: str, reason: str) -> InputError:
    return InputError(reason, file=str(path), where=where)


def _strings(v: str | list[str] | None) -> tuple[str, ...]:
    if v is None:
        return ()
    return (v,) if isinstance(v, str) else tuple(v)


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Read and validate a suite file completely (nothing runs, nothing is generated).

    Parameters
    ----------
    path
        The TOML file.

    Returns
    -------
    Suite

    Raises
    ------
    InputError
        Naming the file, the key path and the reason.
    """
    p = Path(path)
    doc = config.load_toml(p, config.SuiteFile)
    head = doc.suite
    plugins = _strings(head.plugins)
    load_plugins(plugins, p)
    suite = Suite(
        path=p,
        name=head.name or p.parent.name or p.stem,
        time_limit=head.time_limit,
        repetitions=head.repetitions,
        seed=head.seed,
        grace=head.grace,
        memory_limit_mb=head.memory_limit_mb,
        plugins=plugins,
        references_path=None if head.references is None else p.parent / head.references,
        sources=_parse_sources(p, doc.instances),
        methods=_parse_methods(p, "methods", doc.methods, doc.profiles, head.time_limit, "method"),
        references=_parse_methods(p, "references", doc.references, doc.profiles, head.time_limit, "reference"),
        stress=_parse_stress(p, doc.stress),
        max_tasks=head.max_tasks or MAX_TASKS,
        report=doc.report,
    )
    count = suite.task_count()
    if count > suite.max_tasks:
        raise _err(
            p,
            "suite.max_tasks" if head.max_tasks else "suite",
            f"{count} tasks exceed the cap of {suite.max_tasks} (a grid too large?); "
            "raise it with max_tasks = N in [suite] if this is meant",
        )
    # resolve every grid point now (after the count: a huge grid is rejected without this loop)
    for src in suite.sources:
        if src.family is not None:
            _resolve_points(p, src)
    return suite


def load_plugins(modules: tuple[str, ...] | list[str], suite_path: Path | None = None) -> None:
    """Import plugin modules (they register methods or families on import).

    The modules listed in the environment variable ``MOEBENCH_PLUGINS`` (comma-separated)
    are imported too; both lists are also imported in every child process that runs a task.
    """
    import importlib

    for mod in plugin_modules(modules):
        try:
            importlib.import_module(mod)
        except Exception as exc:
            raise InputError(
                f"plugin module {mod!r} failed to import: {type(exc).__name__}: {exc}",
                file=None if suite_path is None else str(suite_path),
                where="suite.plugins",
            ) from None


# ---- instances --------------------------------------------------------------------------------
def _parse_sources(p: Path, entries: list[config.InstancesEntry] | None) -> list[InstanceSource]:
    if entries is None:
        raise _err(p, "instances", "missing: the suite needs at least one [[instances]] entry")
    if not entries:
        raise _err(p, "instances", "expected a non-empty array of tables ([[instances]])")
    out = []
    for i, e in enumerate(entries):
        where = f"instances[{i}]"
        if (e.files is None) == (e.family is None):
            raise _err(p, where, "give exactly one of 'files' or 'family'")
        if e.files is not None:
            keys = ("params", "grid", "seed", "seeds", "name", "holdout", "holdout_tasks", "replay")
            extra = [k for k in keys if _given(e, k)]
            if extra:
                raise _err(p, f"{where}.{extra[0]}", "only meaningful with 'family'")
            out.append(InstanceSource(where, files=_strings(e.files)))
            continue
        family, params = family_params(p, where, e.family or "", e.params)
        grid: dict[str, tuple[Any, ...]] = {}
        _check_names(p, f"{where}.grid", e.grid, family)
        for k, v in e.grid.items():
            if not isinstance(v, list) or not v:
                raise _err(p, f"{where}.grid.{k}", "expected a non-empty list of values")
            if k in params:
                raise _err(p, f"{where}.grid.{k}", "also given in params")
            grid[k] = tuple(v)
        holdout = None
        if e.holdout is not None:
            _check_names(p, f"{where}.holdout", e.holdout, family)
            if not e.holdout:
                raise _err(p, f"{where}.holdout", "expected parameter overrides giving the holdout twin")
            holdout = dict(e.holdout)
        seeds = parse_seeds(p, where, e.seed, e.seeds)
        tasks = _holdout_tasks(p, where, e.holdout_tasks, family)
        if e.replay:
            from moebench.replay import TRACE_FAMILIES

            if family.name not in TRACE_FAMILIES:
                raise _err(
                    p,
                    f"{where}.replay",
                    f"{family.name} instances have no token paths to replay (families {', '.join(TRACE_FAMILIES)})",
                )
        out.append(InstanceSource(where, (), e.family, params, grid, seeds, e.name, holdout, tasks, e.replay))
    return out


def _holdout_tasks(p: Path, where: str, value: str | list[str] | None, family: Family) -> tuple[str, ...]:
    """The ``holdout_tasks`` of an entry: a list of the family's tasks, or ``"all"`` of them."""
    if value is None:
        return ()
    key = f"{where}.holdout_tasks"
    param = next((q for q in family.params if q.name == "task"), None)
    if param is None:
        raise _err(p, key, f"{family.name} has no task parameter to vary")
    if value == "all":
        if not param.choices:
            raise _err(p, key, f"{family.name} does not list its tasks: name them")
        return tuple(param.choices)
    tasks = _strings(value)
    if not tasks:
        raise _err(p, key, 'expected a non-empty list of tasks or "all"')
    if len(set(tasks)) != len(tasks):
        raise _err(p, key, "a task is listed twice")
    for task in tasks:
        if param.choices and task not in param.choices:
            raise _err(p, key, f"unknown task {task!r} (tasks of {family.name}: {', '.join(param.choices)})")
    return tasks


def _given(entry: config.InstancesEntry, key: str) -> bool:
    v = getattr(entry, key)
    return v is not None and v is not False and v != {}


def _check_names(p: Path, where: str, table: Mapping[str, Any], family: Family) -> None:
    allowed = [q.name for q in family.params]
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _err(p, f"{where}.{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def family_params(p: Path, where: str, name: str, params: Mapping[str, Any]) -> tuple[Family, dict[str, Any]]:
    """The registered family ``name`` and its ``params`` table, checked for unknown names."""
    try:
        family = get_family(name)
    except InputError as exc:
        raise _err(p, f"{where}.family", exc.reason) from None
    _check_names(p, f"{where}.params", params, family)
    return family, dict(params)


def parse_seeds(
    p: Path, where: str, seed: int | None, seeds: list[int] | None, *, unique: bool = False
) -> tuple[int, ...]:
    """``seed = n`` or ``seeds = [...]`` (default seed 0); ``unique`` rejects a seed listed twice."""
    if seed is not None and seeds is not None:
        raise _err(p, f"{where}.seeds", "give 'seed' or 'seeds', not both")
    if seeds is None:
        return (seed or 0,)
    if unique and len(set(seeds)) != len(seeds):
        raise _err(p, f"{where}.seeds", "a seed is listed twice")
    return tuple(seeds)


def grid_points(src: InstanceSource) -> list[dict[str, Any]]:
    """Every parameter set of a family entry: ``params`` with each combination of the grid."""
    keys = list(src.grid)
    return [dict(src.params, **dict(zip(keys, combo))) for combo in itertools.product(*src.grid.values())]


def _resolve_points(p: Path, src: InstanceSource) -> None:
    """Bad parameter values (types, declared ranges) fail at load time, for every grid point."""
    family = get_family(src.family or "")
    for point in grid_points(src):
        try:
            family.resolve(point)
        except InputError as exc:
            raise _err(
                p, f"{src.where}.{'grid' if exc.where in src.grid else 'params'}.{exc.where}", exc.reason
            ) from None
        if src.holdout is not None:
            try:
                family.resolve({**point, **src.holdout})
            except InputError as exc:
                raise _err(p, f"{src.where}.holdout.{exc.where}", exc.reason) from None


def _matches(suite_path: Path, pattern: str) -> list[str]:
    full = pattern if os.path.isabs(pattern) else str(suite_path.parent / pattern)
    return sorted(glob.glob(full)) if glob.has_magic(full) else [full]


def materialize(src: InstanceSource, suite_path: Path) -> list[Instance]:
    """The instances of one ``[[instances]]`` entry: files loaded, or the family generated."""
    if src.files:
        from moebench.instance_file import load_instance

        out = []
        for j, pattern in enumerate(src.files):
            matches = _matches(suite_path, pattern)
            if not matches:
                raise _err(suite_path, f"{src.where}.files[{j}]", f"no file matches {pattern!r}")
            for f in matches:
                if not os.path.exists(f):
                    raise _err(suite_path, f"{src.where}.files[{j}]", f"no such file {f!r}")
                out.append(load_instance(f))
        return out
    from moebench.bench.holdout import attach_holdout, attach_shift
    from moebench.families import generate

    out = []
    for point in grid_points(src):
        for seed in src.seeds:
            try:
                inst = generate(src.family or "", point, seed=seed)
            except InputError as exc:
                where = src.where
                if exc.where in src.grid:
                    where = f"{src.where}.grid.{exc.where}"
                elif exc.where in src.params:
                    where = f"{src.where}.params.{exc.where}"
                raise _err(suite_path, where, f"{src.family}: {exc.reason}") from None
            # generated names only carry L, E, K, N and the seed: add the other swept parameters
            extra = [f"{k}{_short(point[k])}" for k in src.grid if k not in ("layers", "experts", "K", "servers")]
            name = "-".join([inst.name, *extra])
            if src.name:
                name = f"{src.name}-{name}"
            if name != inst.name:
                inst = replace_arrays(inst, name=name)
            try:  # the twins' errors name their key (holdout, holdout_tasks, replay, a parameter)
                if src.holdout is not None:
                    inst = attach_holdout(inst, src.family or "", point, seed, src.holdout)
                if src.holdout_tasks or src.replay:
                    inst = attach_shift(inst, src.family or "", point, seed, src.holdout_tasks, src.replay)
            except InputError as exc:
                raise _err(suite_path, f"{src.where}.{exc.where}", exc.reason) from None
            out.append(inst)
    return out


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "_".join(_short(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# ---- methods ----------------------------------------------------------------------------------
def _method(p: Path, where: str, name: str) -> tuple[str, Method]:
    """The canonical name and the built method of ``name`` (bracket arguments checked)."""
    try:
        canonical = parse_method_name(name.strip()).full_name
        return canonical, get_method(canonical)
    except InputError as exc:
        raise _err(p, where, exc.reason) from None


def check_options(p: Path, where: str, method: Method, options: Mapping[str, Any]) -> None:
    """Option names the method accepts and their values (the method's own check, solver profiles
    included)."""
    unknown = sorted(set(options) - set(method.options))
    if unknown:
        accepted = f" (accepted: {', '.join(method.options)})" if method.options else " (it takes none)"
        raise _err(p, f"{where}.{unknown[0]}", f"{method.name} does not accept option {unknown[0]!r}{accepted}")
    try:
        if method.check_options is not None:
            method.check_options(options)
    except InputError as exc:
        key = exc.where if exc.where in options else None
        raise _err(p, f"{where}.{key}" if key else where, exc.reason) from None


def _parse_methods(
    p: Path,
    key: str,
    entries: list[config.MethodsEntry],
    profiles: Mapping[str, Mapping[str, Any]],
    default_limit: float,
    role: str,
) -> list[MethodEntry]:
    if not entries and role == "method":
        raise _err(p, key, f"missing: the suite needs at least one [[{key}]] entry")
    out: list[MethodEntry] = []
    seen: set[tuple[str, str]] = set()
    for i, e in enumerate(entries):
        where = f"{key}[{i}]"
        name, method = _method(p, f"{where}.name", e.name)
        options = dict(e.options)
        if e.profile is not None:
            if e.profile in profiles:
                options = {**profiles[e.profile], **options}
            else:
                options.setdefault("profile", e.profile)
        check_options(p, f"{where}.options", method, options)
        ident = (name, repr(sorted(options.items())))
        if ident in seen:
            raise _err(p, where, f"{name} with these options is listed twice")
        seen.add(ident)
        limit = default_limit if e.time_limit is None else e.time_limit
        out.append(MethodEntry(name, options, limit, _strings(e.instances), role))
    return out


# ---- stress searches --------------------------------------------------------------------------
def _default_name(method: str, family: str, params: Mapping[str, Any]) -> str:
    short = {"servers": "N", "layers": "L", "experts": "E"}
    parts = [f"{short.get(k, k)}{v}" for k, v in sorted(params.items()) if k in short or k == "K"]
    return re.sub(r"[^a-z0-9]+", "-", "-".join([method, family, *parts]).lower()).strip("-")


def _parse_stress(p: Path, entries: list[config.StressEntry]) -> list[StressSearch]:
    out: list[StressSearch] = []
    names: dict[str, str] = {}
    idents: set[str] = set()
    for i, e in enumerate(entries):
        where = f"stress[{i}]"
        method, m = _method(p, f"{where}.method", e.method)
        reference, ref = _method(p, f"{where}.reference", e.reference)
        if ref.info.kind != "exact":
            raise _err(p, f"{where}.reference", f"{e.reference!r} is not an exact method (kind {ref.info.kind})")
        check_options(p, f"{where}.reference_options", ref, e.reference_options)
        family, params = family_params(p, where, e.family, e.params)
        try:
            family.resolve(params)
        except InputError as exc:
            raise _err(p, f"{where}.params.{exc.where}", exc.reason) from None
        _check_start(p, where, method, m, family, params)
        seeds = parse_seeds(p, where, e.seed, e.seeds, unique=True)
        if e.claim is not None:
            if not (e.claim_source or "").strip():
                raise _err(p, f"{where}.claim_source", "a claim needs its source (non-empty text)")
        else:
            for key in ("claim_source", "claim_conditions"):
                if getattr(e, key) is not None:
                    raise _err(p, f"{where}.{key}", "only meaningful with 'claim'")
        name = e.name
        if name is None:
            name = _default_name(method, e.family, params)
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise _err(p, f"{where}.name", "expected letters, digits, '-', '_' or '.' (a file stem)")
        if name in names:
            if e.name is not None:
                raise _err(p, f"{where}.name", f"also the name of {names[name]}")
            name = f"{name}-{i}"
        names[name] = where
        ident = json.dumps(
            [method, e.family, params, e.budget, e.reference, e.reference_options, e.steps, e.claim], sort_keys=True
        )
        if ident in idents:
            raise _err(p, where, f"the same search of {method} on {e.family} is listed twice")
        idents.add(ident)
        out.append(
            StressSearch(
                where,
                name,
                method,
                e.family,
                params,
                e.budget,
                seeds,
                reference,
                dict(e.reference_options),
                e.steps,
                e.claim,
                (e.claim_source or "").strip(),
                (e.claim_conditions or "").strip(),
            )
        )
    return out


def _check_start(p: Path, where: str, name: str, method: Method, family: Family, params: Mapping[str, Any]) -> None:
    """Generate one starting instance now: bad parameter values and a method that is not
    applicable to the family's instances (e.g. a K = 1 method at K = 2) fail at load time."""
    names = {q.name for q in family.params}
    base = {k: v for k, v in SMALL_DEFAULTS.items() if k in names}
    base.update(params)
    try:
        inst = family.generate(base, seed=0)
    except InputError as exc:
        key = f"{where}.params.{exc.where}" if exc.where in names else f"{where}.params"
        raise _err(p, key, f"{family.name}: {exc.reason}") from None
    missing = check_conditions(method.info.assumptions, inst)
    if missing:
        raise _err(
            p,
            f"{where}.method",
            f"{name} assumes {', '.join(missing)}, which the instances of {family.name} with these params do not "
            "satisfy",
        )
