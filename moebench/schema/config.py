"""The declarative schema of moebench's TOML files, and the one validator that reads them.

Suites (``[suite]``, ``[[instances]]``, ``[[methods]]``, ``[[references]]``, ``[profiles.*]``,
``[[stress]]``), the instance library manifest and solver profiles are typed models
(:class:`msgspec.Struct`): every key, its type, its range and its default is declared once
here. :func:`load_toml` reads a file into a model; any mistake (not TOML, an unknown key, a
missing key, a wrong type, a value out of range) becomes one :class:`~moebench.errors.InputError`
naming the file, the key path (``methods[2].time_limit``) and the reason in words. What a
schema cannot say (a method or family name exists, parameters fit the family) is checked by
the loader of each file, with the same error.

msgspec was chosen over pydantic for start-up time: its import and validation cost a few
milliseconds, and solver profiles are read by every exact run.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from moebench.errors import InputError

T = TypeVar("T")

#: Longest wall-clock limit, grace or budget accepted, in seconds (about 116 days): limits
#: must be finite numbers.
MAX_SECONDS = 1e7
#: Address-space limits of a run, in MB: below the smallest a Python child with numpy and the
#: solver libraries can start in, and beyond what ``setrlimit`` takes, nothing could work.
MIN_MEMORY_MB = 512
MAX_MEMORY_MB = 2**40

Seconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_SECONDS)]
Grace = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]
Count = Annotated[int, msgspec.Meta(ge=1)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Text = Annotated[str, msgspec.Meta(min_length=1)]
Ratio = Annotated[float, msgspec.Meta(gt=0, le=1)]
MemoryMB = Annotated[int, msgspec.Meta(ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)]


class Model(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every table: unknown keys are errors."""


# ---- suites -------------------------------------------------------------------------------------
class SuiteHead(Model):
    """``[suite]``."""

    name: Text | None = None
    time_limit: Seconds = 60.0
    repetitions: Count = 1
    seed: Seed = 0
    grace: Grace = 5.0
    #: address-space limit (RLIMIT_AS) of every run, MB
    memory_limit_mb: MemoryMB | None = None
    plugins: list[Text] | Text = msgspec.field(default_factory=list)
    references: Text | None = None
    #: cap on the number of tasks (default :data:`moebench.bench.suite.MAX_TASKS`)
    max_tasks: Count | None = None


class InstancesEntry(Model):
    """``[[instances]]``: files, or a family with parameters, a grid and seeds."""

    files: list[Text] | Text | None = None
    family: Text | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    grid: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: Seed | None = None
    seeds: Annotated[list[Seed], msgspec.Meta(min_length=1)] | None = None
    name: Text | None = None
    holdout: dict[str, Any] | None = None
    #: other tasks each instance's placements are also scored on ("all": every other task of the family)
    holdout_tasks: list[Text] | Text | None = None
    #: replay the real token paths of every scored token set (tail latency; trace families only)
    replay: bool = False


class MethodsEntry(Model):
    """``[[methods]]`` and ``[[references]]``."""

    name: Text
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    profile: Text | None = None
    time_limit: Seconds | None = None
    instances: list[Text] | Text | None = None


class StressEntry(Model):
    """``[[stress]]``: an adversarial search run as a task of the suite."""

    method: Text
    family: Text
    budget: Seconds
    name: Text | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: Seed | None = None
    seeds: Annotated[list[Seed], msgspec.Meta(min_length=1)] | None = None
    reference: Text = "bruteforce"
    reference_options: dict[str, Any] = msgspec.field(default_factory=dict)
    steps: Count = 200
    claim: Ratio | None = None
    claim_source: str | None = None
    claim_conditions: str | None = None


#: Quantities the paper table of a report can show (:data:`moebench.report.paper.QUANTITIES`).
ReportColumn = Literal[
    "gain_mean",
    "gain_worst",
    "gain_gmean",
    "lat_mean",
    "lat_worst",
    "bound_worst",
    "reduction",
    "test_reduction",
    "gap",
    "time",
]


class ReportTable(Model):
    """``[report]``: what the report of a suite shows (``moebench report`` options override it).

    ``columns`` are the quantities of the paper table (:data:`ReportColumn`); ``latex_wide`` is
    how tables wider than the line are set (split into several floats, or scaled).
    """

    methods: Annotated[list[Text], msgspec.Meta(min_length=1)] | None = None
    families: Annotated[list[Text], msgspec.Meta(min_length=1)] | None = None
    columns: Annotated[list[ReportColumn], msgspec.Meta(min_length=1)] | None = None
    latex_wide: Literal["split", "resize"] = "split"


class ReportFile(Model):
    """``report.toml`` of a results folder: the suite's ``[report]`` table, kept beside the results."""

    report: ReportTable = msgspec.field(default_factory=ReportTable)


class SuiteFile(Model):
    """A suite file."""

    suite: SuiteHead = msgspec.field(default_factory=SuiteHead)
    instances: list[InstancesEntry] | None = None
    methods: list[MethodsEntry] = msgspec.field(default_factory=list)
    references: list[MethodsEntry] = msgspec.field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    stress: list[StressEntry] = msgspec.field(default_factory=list)
    report: ReportTable | None = None


# ---- the instance library -------------------------------------------------------------------------
class LibraryEntry(Model):
    """``[[instance]]`` of ``instances/manifest.toml``."""

    name: Text
    family: Text
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    seed: Seed = 0
    tier: Literal["small", "medium", "hard"] = "small"
    store: Literal["file", "recipe"] = "file"
    hash: Text | None = None
    note: str = ""


class LibraryFile(Model):
    """``instances/manifest.toml``."""

    instance: list[LibraryEntry] = msgspec.field(default_factory=list)


# ---- solver profiles ------------------------------------------------------------------------------
class ProfileOptions(Model):
    """``[options]`` of a solver profile: moebench's own back-end options."""

    threads: Count | None = None
    mip_rel_gap: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    mip_abs_gap: Annotated[float, msgspec.Meta(ge=0, le=1e300)] | None = None


class ProfileFile(Model):
    """A solver profile (``solvers/<name>.toml``)."""

    backend: Literal["highs", "cpsat"]
    name: Text | None = None
    description: str = ""
    options: ProfileOptions = msgspec.field(default_factory=ProfileOptions)
    #: passed verbatim to the solver
    solver: dict[str, Any] = msgspec.field(default_factory=dict)


# ---- the validator --------------------------------------------------------------------------------
def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document of ``path``.

    Raises
    ------
    InputError
        A missing, unreadable or non-TOML file, naming it.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError("no such file", file=str(p)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a TOML file", file=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(p)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(p)) from None


def load_toml(path: str | Path, model: type[T]) -> T:
    """Read ``path`` into ``model``.

    Raises
    ------
    InputError
        ``file: key.path: reason`` for any mistake.
    """
    doc = read_toml(path)
    try:
        return msgspec.convert(doc, model)
    except msgspec.ValidationError as exc:
        key, reason = explain(str(exc), doc, model)
        raise InputError(reason, file=str(path), where=key.replace(".[", "[") or "(top level)") from None


_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[(\d+|\.\.\.)\]")
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def explain(message: str, doc: Any, model: type) -> tuple[str, str]:
    """A msgspec validation message as ``(key path, reason in words)``."""
    m = _AT.match(message)
    msg, path = (m.group("msg"), m.group("path")) if m else (message, "")
    segments = [a if a else (int(b) if b.isdigit() else b) for a, b in _SEGMENT.findall(path)]
    key = path.lstrip(".")
    value = _value_at(doc, segments)
    if found := re.fullmatch(r"Object contains unknown field `(.+)`", msg):
        allowed = sorted(_fields(_type_at(model, segments)))
        return _join(key, found.group(1)), f"unknown key (allowed: {', '.join(allowed)})"
    if found := re.fullmatch(r"Object missing required field `(.+)`", msg):
        return _join(key, found.group(1)), "missing (required)"
    if found := re.fullmatch(r"Expected `([^`]+)`, got `([^`]+)`", msg):
        kinds = [_KINDS.get(k.strip(), k.strip()) for k in found.group(1).split("|") if k.strip() != "null"]
        return key, f"expected {' or '.join(kinds)}, got {_show(value)}"
    if found := re.fullmatch(r"Expected `[^`]+` of length (>=|<=) (\d+)", msg):
        if found.group(1) == ">=" and found.group(2) == "1":
            return key, "must not be empty"
        return key, f"length must be {found.group(1)} {found.group(2)}"
    if found := re.fullmatch(r"Expected `[^`]+` (>=|>|<=|<) (\S+)", msg):
        bound = float(found.group(2))
        return key, f"must be {found.group(1)} {bound:g}, got {_show(value)}"
    if re.fullmatch(r"Invalid enum value .*", msg):
        choices = _choices(_type_at(model, segments))
        return key, f"must be one of {', '.join(choices)}, got {_show(value)}"
    return key, msg


def _join(key: str, field: str) -> str:
    return f"{key}.{field}" if key else field


def _show(value: Any) -> str:
    return "nothing" if value is _ABSENT else repr(value)


_ABSENT = object()


def _value_at(doc: Any, segments: list[Any]) -> Any:
    cur = doc
    for s in segments:
        if isinstance(s, int) and isinstance(cur, list) and 0 <= s < len(cur):
            cur = cur[s]
        elif isinstance(s, str) and isinstance(cur, Mapping) and s in cur:
            cur = cur[s]
        else:
            return _ABSENT
    return cur


def _unwrap(tp: Any) -> list[Any]:
    """The alternatives of a type: Annotated and unions opened, None dropped."""
    if typing.get_origin(tp) is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [alt for a in typing.get_args(tp) for alt in _unwrap(a)]
    return [] if tp is type(None) else [tp]


def _type_at(model: Any, segments: list[Any]) -> Any:
    tp = model
    for s in segments:
        nxt = None
        for alt in _unwrap(tp):
            origin = typing.get_origin(alt)
            if isinstance(s, str) and isinstance(alt, type) and issubclass(alt, msgspec.Struct):
                hints = typing.get_type_hints(alt, include_extras=True)
                nxt = hints.get(s)
            elif isinstance(s, int) and origin is list:
                nxt = typing.get_args(alt)[0]
            elif origin is dict:
                nxt = typing.get_args(alt)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        tp = nxt
    return tp


def _fields(tp: Any) -> list[str]:
    for alt in _unwrap(tp):
        if isinstance(alt, type) and issubclass(alt, msgspec.Struct):
            return [f.name for f in msgspec.structs.fields(alt)]
    return []


def _choices(tp: Any) -> list[str]:
    for alt in _unwrap(tp):
        if typing.get_origin(alt) is Literal:
            return [str(a) for a in typing.get_args(alt)]
    return []
