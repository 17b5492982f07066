"""Solver profiles: named option sets in ``solvers/*.toml`` (e.g. ``highs-reference``).

A profile file holds::

    name = "highs-reference"
    backend = "highs"          # "highs" (milp-highs, milp-pyomo) or "cpsat"
    description = "..."
    [options]                  # moebench back-end options: threads, mip_rel_gap, mip_abs_gap
    threads = 1
    [solver]                   # passed verbatim to the solver (HiGHS options / CP-SAT parameters)
    presolve = "on"

A profile is selected by name (a file ``solvers/<name>.toml`` next to the package) or by a path
to a ``.toml`` file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.errors import InputError

#: The repository's ``solvers/`` folder.
SOLVERS_DIR = Path(__file__).resolve().parents[2] / "solvers"
BACKENDS = ("highs", "cpsat")
OPTION_KEYS = ("threads", "mip_rel_gap", "mip_abs_gap")


@dataclass(frozen=True)
class Profile:
    """A loaded solver profile.

    Attributes
    ----------
    name : str
        Profile name.
    backend : str
        ``"highs"`` or ``"cpsat"``.
    description : str
        One line.
    options : dict
        Back-end options (``threads``, ``mip_rel_gap``, ``mip_abs_gap``).
    solver : dict
        Raw solver options.
    path : str
        File it was read from.
    """

    name: str
    backend: str
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)
    path: str = ""


def known_profiles(folder: Path = SOLVERS_DIR) -> list[str]:
    """Names of the profiles in ``folder``."""
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_profile(name: str, backend: str | None = None, folder: Path = SOLVERS_DIR) -> Profile:
    """Load a profile by name or path.

    Parameters
    ----------
    name
        Profile name (``solvers/<name>.toml``) or path to a ``.toml`` file.
    backend
        When given, the profile must be for this back end.
    folder
        Where named profiles live.

    Raises
    ------
    InputError
        Unknown profile (the message lists the known ones), unreadable file, bad content, or a
        profile for another back end.
    """
    path = Path(name)
    if not (name.endswith(".toml") and path.is_file()):
        path = folder / f"{name}.toml"
        if not path.is_file():
            raise InputError(
                f"unknown solver profile {name!r}; known: {', '.join(known_profiles(folder)) or '(none)'}",
                where="profile",
            )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read profile: {exc}", file=str(path), where="profile") from None
    unknown = sorted(set(data) - {"name", "backend", "description", "options", "solver"})
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)}", file=str(path), where="profile")
    be = data.get("backend")
    if be not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {be!r}", file=str(path), where="backend")
    opts = dict(data.get("options", {}))
    bad = sorted(set(opts) - set(OPTION_KEYS))
    if bad:
        raise InputError(
            f"unknown option(s) {', '.join(bad)} (known: {', '.join(OPTION_KEYS)})", file=str(path), where="options"
        )
    if backend is not None and be != backend:
        raise InputError(f"profile {name!r} is for back end {be!r}, not {backend!r}", where="profile")
    return Profile(
        name=str(data.get("name", path.stem)),
        backend=be,
        description=str(data.get("description", "")),
        options=opts,
        solver=dict(data.get("solver", {})),
        path=str(path),
    )
