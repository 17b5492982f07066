"""Instance families: anything that maps parameters + seed to an :class:`~moebench.Instance`.

Families register through :func:`register_family`; third-party ones arrive through the
``moebench.families`` entry-point group. The same parameters and seed always give the same
instance (bit for bit), which the curated library checks with content hashes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moebench.errors import InputError
from moebench.instance import Instance, replace_arrays
from moebench.plugins import load_registry


def _as_float_list(v: Any) -> tuple[float, ...]:
    if isinstance(v, str):
        v = [s for s in v.replace(";", ",").split(",") if s.strip()]
    if isinstance(v, (int, float)):
        v = [v]
    return tuple(float(x) for x in v)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": lambda v: int(v) if not isinstance(v, float) or v.is_integer() else int("x"),
    "float": float,
    "str": str,
    "floats": _as_float_list,
    "bool": lambda v: (
        v if isinstance(v, bool) else {"true": True, "1": True, "false": False, "0": False}[str(v).lower()]
    ),
}


@dataclass(frozen=True)
class Param:
    """A family parameter.

    Attributes
    ----------
    name : str
        Parameter name (``--param name=value``).
    default : Any
        Default value (None means "derived", explained in ``help``).
    type : str
        One of ``int``, ``float``, ``str``, ``floats`` (comma-separated list), ``bool``.
    help : str
        Meaning and unit.
    choices : tuple or None
        Allowed values for ``str`` parameters.
    """

    name: str
    default: Any
    type: str
    help: str
    choices: tuple[str, ...] | None = None

    def convert(self, raw: Any, family: str) -> Any:
        """Convert a raw (string or JSON) value, raising :class:`InputError` when it does not fit."""
        if raw is None:
            return None
        try:
            value = _CONVERTERS[self.type](raw)
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"{family}: parameter {self.name} expects {self.type}, got {raw!r}", where=self.name
            ) from None
        if self.choices is not None and value not in self.choices:
            raise InputError(
                f"{family}: parameter {self.name} must be one of {', '.join(self.choices)}, got {value!r}",
                where=self.name,
            )
        return value


GeneratorFn = Callable[[dict[str, Any], int], Instance]


@dataclass(frozen=True)
class Family:
    """A registered family.

    Attributes
    ----------
    name_params : tuple of str
        Parameters the generator's own instance name already spells exactly (``layers`` in
        ``zipf-L3-...``), or that do not change the instance (a data folder). Every other
        parameter with a non-default value is added to the name by :func:`instance_name`.
    """

    name: str
    fn: GeneratorFn
    params: tuple[Param, ...]
    summary: str
    kind: str  # "generated", "trace" or "surrogate"
    name_params: tuple[str, ...] = ()

    def resolve(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Full parameter dict: defaults overridden by ``raw`` (converted and checked)."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise InputError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(known)})", where=unknown[0]
            )
        out = {p.name: p.default for p in self.params}
        for k, v in raw.items():
            out[k] = known[k].convert(v, self.name)
        return out

    def generate(self, params: Mapping[str, Any] | None = None, seed: int = 0, name: str | None = None) -> Instance:
        """Generate the instance for ``params`` and ``seed``.

        Its name is ``name`` if given, else the generator's name completed by
        :func:`instance_name`, so that different parameters never give the same name.
        """
        full = self.resolve(params or {})
        inst = self.fn(full, seed)
        if name is None:
            name = instance_name(self, inst.name, full)
        if name != inst.name:
            inst = replace_arrays(inst, name=name)
        return inst


#: Longest generated instance name; longer ones spell their extra parameters as a hash.
MAX_GENERATED_NAME = 160
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._+]+")


def _spell(value: Any) -> str | None:
    """The exact spelling of a parameter value in a name, or None when it has no safe one."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, (tuple, list)):
        parts = [_spell(v) for v in value]
        return None if any(p is None for p in parts) else ",".join(parts)  # type: ignore[arg-type]
    if isinstance(value, str) and _PLAIN_VALUE.fullmatch(value):
        return value
    return None


def instance_name(family: Family, base: str, params: Mapping[str, Any]) -> str:
    """``base`` followed by every parameter that is not at its default and not in ``base``.

    ``zipf-L3-E16-K2-N3-s0`` with ``capacity = 0.05`` becomes
    ``zipf-L3-E16-K2-N3-s0-capacity=0.05``; defaults keep the plain name. Values are spelled
    exactly (``repr`` of floats, so different values give different names). When a value has no
    spelling within the name rule or the name would pass :data:`MAX_GENERATED_NAME` characters,
    the extra parameters are replaced by ``p`` and 12 hex digits of the SHA-256 of their JSON.
    """
    extra = {
        p.name: params[p.name]
        for p in family.params
        if p.name not in family.name_params and p.name in params and params[p.name] != p.default
    }
    if not extra:
        return base
    spelled = [_spell(v) for v in extra.values()]
    if all(s is not None for s in spelled):
        name = "-".join([base, *(f"{k}={s}" for k, s in zip(extra, spelled))])
        if len(name) <= MAX_GENERATED_NAME:
            return name
    text = json.dumps(extra, sort_keys=True, default=list, separators=(",", ":"))
    return f"{base}-p{hashlib.sha256(text.encode()).hexdigest()[:12]}"


_FAMILIES: dict[str, Family] = {}
_BUILTIN_MODULES = ("moebench.families.generated", "moebench.families.traces", "moebench.families.user_traces")
_loaded = False


def register_family(
    name: str,
    *,
    params: Sequence[Param],
    summary: str,
    kind: str = "generated",
    name_params: Sequence[str] = (),
) -> Callable[[GeneratorFn], GeneratorFn]:
    """Decorator registering a generator ``fn(params, seed) -> Instance`` as family ``name``.

    ``name_params`` lists the parameters the generator's instance names already spell exactly
    (see :attr:`Family.name_params`); the others are added to the name when not at default.
    """
    unknown = sorted(set(name_params) - {p.name for p in params})
    if unknown:
        raise ValueError(f"family {name!r}: name_params {unknown} are not parameters")

    def deco(fn: GeneratorFn) -> GeneratorFn:
        if name in _FAMILIES and _FAMILIES[name].fn is not fn:
            raise ValueError(f"family {name!r} registered twice")
        _FAMILIES[name] = Family(name, fn, tuple(params), summary, kind, tuple(name_params))
        return fn

    return deco


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        load_registry(_BUILTIN_MODULES, "moebench.families")


def get_family(name: str) -> Family:
    """The family registered as ``name``.

    Raises
    ------
    InputError
        For an unknown name.
    """
    _load_builtins()
    if name not in _FAMILIES:
        raise InputError(f"unknown family {name!r} (known: {', '.join(sorted(_FAMILIES))})", where="family")
    return _FAMILIES[name]


def families() -> list[Family]:
    """Every registered family, sorted by name."""
    _load_builtins()
    return sorted(_FAMILIES.values(), key=lambda f: f.name)


def generate(
    name: str, params: Mapping[str, Any] | None = None, seed: int = 0, instance_name: str | None = None
) -> Instance:
    """Generate an instance of family ``name``; see :meth:`Family.generate`."""
    return get_family(name).generate(params, seed, instance_name)
