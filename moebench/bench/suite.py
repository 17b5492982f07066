"""Benchmark suite files (TOML): loading and validation.

A suite names instances (files, globs, or family generators with parameter grids and seeds),
the methods to benchmark with their options, the exact reference methods, solver profiles,
the wall-clock limit per run and the number of repetitions::

    [suite]
    name = "quick"
    time_limit = 20.0          # seconds per run (a method entry may override it)
    repetitions = 1            # every (instance, method) runs this often, seed = seed + repetition
    seed = 0
    grace = 5.0                # seconds past the limit before the runner kills a run
    memory_limit_mb = 4096     # address-space limit of every run (optional)
    plugins = ["my_pkg.methods"]   # modules imported in the runner and in every child
    references = "refs.solu"   # reference file (default: <out>/references.solu)

    [[instances]]
    files = ["../../instances/*.json.gz"]

    [[instances]]
    family = "clustered"
    seeds = [0, 1]
    params = { layers = 2, experts = 6 }
    grid = { K = [1, 2], capacity = [0.2, 0.4] }   # cartesian product
    # holdout = { which = "test" }  (optional: overrides giving each instance's holdout twin, same
    # family, params and seed; every placement is also evaluated there; moebench.bench.holdout)

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

    [[stress]]                 # adversarial searches run after the tasks (moebench.bench.stress_runs)
    method = "greedy-enum[2]"
    family = "uniform"
    params = { K = 1, servers = 2 }
    budget = 60                # seconds per seed
    claim = 0.632              # optional: a claim the method does not declare (with claim_source,
    claim_source = "paper"     # and claim_conditions as free text)

Every error is an :class:`~moebench.errors.InputError` naming the file, the key path
(``methods[2].options``) and the reason. Method names are parsed at load time: a malformed name
or bad bracket arguments are errors, but a well-formed name that no installed module registers
is only warned about — its tasks become rows with status ``error`` — so that a suite can name
methods of optional plugins.
"""

from __future__ import annotations

import fnmatch
import glob
import itertools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.instance import Instance
from moebench.registry import plugin_modules

#: The instance properties every results row carries (so reports need only the table).
_SUITE_KEYS = {"name", "time_limit", "repetitions", "seed", "grace", "memory_limit_mb", "plugins", "references"}
_TOP_KEYS = {"suite", "instances", "methods", "references", "profiles", "stress"}
_INSTANCE_KEYS = {"files", "family", "params", "grid", "seed", "seeds", "name", "holdout"}
_METHOD_KEYS = {"name", "options", "profile", "time_limit", "instances"}


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
    unknown_methods: list[str] = field(default_factory=list)
    #: ``[[stress]]`` entries (moebench.bench.stress_runs.StressEntry), run after the tasks
    stress: list[Any] = field(default_factory=list)

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
            for inst in _materialize(src, self.path):
                if inst.name in seen:
                    raise InputError(
                        f"two instances are named {inst.name!r} (also from {seen[inst.name]}); give them distinct names",
                        file=str(self.path),
                        where=src.where,
                    )
                seen[inst.name] = src.where
                out.append(inst)
        return out


def _err(path: Path, where: str, reason: str) -> InputError:
    return InputError(reason, file=str(path), where=where)


def _check_keys(path: Path, where: str, table: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _err(path, where or "(top level)", f"expected a table, got {type(table).__name__}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise _err(path, key, f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return table


def _number(path: Path, where: str, v: Any, *, minimum: float, strict: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _err(path, where, f"expected a number, got {v!r}")
    if not (v > minimum if strict else v >= minimum) or v != v:
        raise _err(path, where, f"must be {'>' if strict else '>='} {minimum}, got {v!r}")
    return float(v)


def _integer(path: Path, where: str, v: Any, *, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _err(path, where, f"expected an integer, got {v!r}")
    if v < minimum:
        raise _err(path, where, f"must be >= {minimum}, got {v}")
    return v


def _strings(path: Path, where: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise _err(path, where, "expected a string or a list of non-empty strings")
    return tuple(v)


def load_suite(path: str | os.PathLike[str]) -> Suite:
    """Read and validate a suite file.

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
    try:
        with open(p, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("no such file", file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(p)) from None
    _check_keys(p, "", doc, _TOP_KEYS)
    head = _check_keys(p, "suite", doc.get("suite", {}), _SUITE_KEYS)
    name = head.get("name", p.parent.name or p.stem)
    if not isinstance(name, str) or not name:
        raise _err(p, "suite.name", "expected a non-empty string")
    time_limit = _number(p, "suite.time_limit", head.get("time_limit", 60.0), minimum=0, strict=True)
    repetitions = _integer(p, "suite.repetitions", head.get("repetitions", 1), minimum=1)
    seed = _integer(p, "suite.seed", head.get("seed", 0), minimum=0)
    grace = _number(p, "suite.grace", head.get("grace", 5.0), minimum=0, strict=False)
    mem = head.get("memory_limit_mb")
    memory_limit_mb = None if mem is None else _integer(p, "suite.memory_limit_mb", mem, minimum=64)
    plugins = _strings(p, "suite.plugins", head.get("plugins", []))
    refs = head.get("references")
    if refs is not None and (not isinstance(refs, str) or not refs):
        raise _err(p, "suite.references", "expected a path")
    references_path = None if refs is None else (p.parent / refs)

    profiles = doc.get("profiles", {})
    _check_keys(p, "profiles", profiles, set(profiles) if isinstance(profiles, dict) else set())
    for pname, prof in profiles.items():
        if not isinstance(prof, dict):
            raise _err(p, f"profiles.{pname}", "a profile must be a table of method options")

    load_plugins(plugins, p)
    sources = _parse_sources(p, doc.get("instances"))
    methods, unknown = _parse_methods(p, "methods", doc.get("methods"), profiles, time_limit, "method")
    references, unknown_refs = _parse_methods(
        p, "references", doc.get("references", []), profiles, time_limit, "reference", required=False
    )
    return Suite(
        path=p,
        name=name,
        time_limit=time_limit,
        repetitions=repetitions,
        seed=seed,
        grace=grace,
        memory_limit_mb=memory_limit_mb,
        plugins=plugins,
        references_path=references_path,
        sources=sources,
        methods=methods,
        references=references,
        unknown_methods=sorted(set(unknown + unknown_refs)),
        stress=_parse_stress(p, doc.get("stress")),
    )


def _parse_stress(p: Path, raw: Any) -> list[Any]:
    """The ``[[stress]]`` entries (validated in moebench.bench.stress_runs)."""
    from moebench.bench.stress_runs import parse_stress

    return parse_stress(p, raw)


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


def _parse_sources(p: Path, raw: Any) -> list[InstanceSource]:
    if raw is None:
        raise _err(p, "instances", "missing: the suite needs at least one [[instances]] entry")
    if not isinstance(raw, list) or not raw:
        raise _err(p, "instances", "expected a non-empty array of tables ([[instances]])")
    out = []
    for i, entry in enumerate(raw):
        where = f"instances[{i}]"
        _check_keys(p, where, entry, _INSTANCE_KEYS)
        if ("files" in entry) == ("family" in entry):
            raise _err(p, where, "give exactly one of 'files' or 'family'")
        if "files" in entry:
            extra = sorted(set(entry) - {"files"})
            if extra:
                raise _err(p, f"{where}.{extra[0]}", "only meaningful with 'family'")
            out.append(InstanceSource(where, files=_strings(p, f"{where}.files", entry["files"])))
            continue
        fam = entry["family"]
        family, params = family_params(p, where, entry)
        grid_raw = _check_keys(p, f"{where}.grid", entry.get("grid", {}), {q.name for q in family.params})
        grid: dict[str, tuple[Any, ...]] = {}
        for k, v in grid_raw.items():
            if not isinstance(v, list) or not v:
                raise _err(p, f"{where}.grid.{k}", "expected a non-empty list of values")
            if k in params:
                raise _err(p, f"{where}.grid.{k}", "also given in params")
            grid[k] = tuple(v)
        seeds = parse_seeds(p, where, entry)
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or not name):
            raise _err(p, f"{where}.name", "expected a non-empty string (a prefix of the instance names)")
        holdout = None
        if "holdout" in entry:
            holdout = dict(_check_keys(p, f"{where}.holdout", entry["holdout"], {q.name for q in family.params}))
            if not holdout:
                raise _err(p, f"{where}.holdout", "expected parameter overrides giving the holdout twin")
        src = InstanceSource(where, family=fam, params=dict(params), grid=grid, seeds=seeds, name=name, holdout=holdout)
        # resolve every grid point now so that bad parameter values fail at load time
        for point in _grid_points(src):
            try:
                family.resolve(point)
            except InputError as exc:
                raise _err(p, f"{where}.{'grid' if exc.where in grid else 'params'}.{exc.where}", exc.reason) from None
            if holdout is not None:
                try:
                    family.resolve({**point, **holdout})
                except InputError as exc:
                    raise _err(p, f"{where}.holdout.{exc.where}", exc.reason) from None
        out.append(src)
    return out


def family_params(p: Path, where: str, entry: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The registered family named by ``entry["family"]`` and its checked ``params`` table."""
    from moebench.families import get_family

    fam = entry["family"]
    if not isinstance(fam, str):
        raise _err(p, f"{where}.family", "expected a family name")
    try:
        family = get_family(fam)
    except InputError as exc:
        raise _err(p, f"{where}.family", exc.reason) from None
    params = dict(_check_keys(p, f"{where}.params", entry.get("params", {}), {q.name for q in family.params}))
    return family, params


def parse_seeds(p: Path, where: str, entry: Mapping[str, Any], *, unique: bool = False) -> tuple[int, ...]:
    """``seed = n`` or ``seeds = [...]`` (default seed 0); ``unique`` rejects a seed listed twice."""
    if "seed" in entry and "seeds" in entry:
        raise _err(p, f"{where}.seeds", "give 'seed' or 'seeds', not both")
    if "seeds" not in entry:
        return (_integer(p, f"{where}.seed", entry.get("seed", 0), minimum=0),)
    raw = entry["seeds"]
    if not isinstance(raw, list) or not raw:
        raise _err(p, f"{where}.seeds", "expected a non-empty list of integers")
    seeds = tuple(_integer(p, f"{where}.seeds[{j}]", v, minimum=0) for j, v in enumerate(raw))
    if unique and len(set(seeds)) != len(seeds):
        raise _err(p, f"{where}.seeds", "a seed is listed twice")
    return seeds


def _grid_points(src: InstanceSource) -> list[dict[str, Any]]:
    keys = list(src.grid)
    return [dict(src.params, **dict(zip(keys, combo))) for combo in itertools.product(*src.grid.values())]


def _materialize(src: InstanceSource, suite_path: Path) -> list[Instance]:
    if src.files:
        from moebench.instance_file import load_instance

        out = []
        for j, pattern in enumerate(src.files):
            full = pattern if os.path.isabs(pattern) else str(suite_path.parent / pattern)
            matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
            if not matches:
                raise _err(suite_path, f"{src.where}.files[{j}]", f"no file matches {pattern!r}")
            for f in matches:
                if not os.path.exists(f):
                    raise _err(suite_path, f"{src.where}.files[{j}]", f"no such file {f!r}")
                out.append(load_instance(f))
        return out
    from moebench.families import generate
    from moebench.instance import replace_arrays

    out = []
    for point in _grid_points(src):
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
            if src.holdout is not None:
                inst = _with_holdout(inst, src, point, seed, suite_path)
            out.append(inst)
    return out


def _with_holdout(inst: Instance, src: InstanceSource, point: dict[str, Any], seed: int, suite_path: Path) -> Instance:
    """Attach the holdout twin's spec to ``inst`` after checking the twin (moebench.bench.holdout)."""
    from moebench.bench.holdout import attach_holdout

    try:
        return attach_holdout(inst, src.family or "", point, seed, src.holdout or {})
    except InputError as exc:
        raise _err(suite_path, f"{src.where}.holdout", exc.reason) from None


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "_".join(_short(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _unknown_suffix(name: str) -> bool:
    """True when ``name`` has a ``+suffix`` that no installed module registers (as a modifier
    or as part of a base name such as ``greedy-ratio+single``): a method of a missing module."""
    from moebench.methods import modifiers, registered

    bases = {r.base for r in registered()}
    core = name.split("[", 1)[0]
    tail = name.rsplit("]", 1)[-1] if "]" in name else name
    suffixes = [t for t in tail.split("+")[1:] if t]
    return bool(suffixes) and core not in bases and any(t not in modifiers() for t in suffixes)


def _parse_methods(
    p: Path,
    key: str,
    raw: Any,
    profiles: Mapping[str, Any],
    default_limit: float,
    role: str,
    *,
    required: bool = True,
) -> tuple[list[MethodEntry], list[str]]:
    from moebench.methods import get_method, parse_method_name

    if raw is None or (isinstance(raw, list) and not raw):
        if required:
            raise _err(p, key, f"missing: the suite needs at least one [[{key}]] entry")
        return [], []
    if not isinstance(raw, list):
        raise _err(p, key, f"expected an array of tables ([[{key}]])")
    out: list[MethodEntry] = []
    unknown: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(raw):
        where = f"{key}[{i}]"
        _check_keys(p, where, entry, _METHOD_KEYS)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _err(p, f"{where}.name", "expected a method name")
        name = name.strip()
        try:
            name = parse_method_name(name).full_name
            get_method(name)  # bracket arguments are checked by the builder
        except InputError as exc:
            if not (exc.reason.startswith("unknown method") or _unknown_suffix(name)):
                raise _err(p, f"{where}.name", exc.reason) from None
            unknown.append(name)
        options = entry.get("options", {})
        if not isinstance(options, dict):
            raise _err(p, f"{where}.options", "expected a table of method options")
        options = dict(options)
        if "profile" in entry:
            prof = entry["profile"]
            if not isinstance(prof, str):
                raise _err(p, f"{where}.profile", "expected a profile name")
            if prof in profiles:
                options = {**profiles[prof], **options}
            else:
                options.setdefault("profile", prof)
        limit = entry.get("time_limit", default_limit)
        limit = _number(p, f"{where}.time_limit", limit, minimum=0, strict=True)
        patterns = _strings(p, f"{where}.instances", entry["instances"]) if "instances" in entry else ()
        ident = (name, repr(sorted(options.items())))
        if ident in seen:
            raise _err(p, where, f"{name} with these options is listed twice")
        seen.add(ident)
        out.append(MethodEntry(name, options, limit, patterns, role))
    return out, unknown
