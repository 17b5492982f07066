"""Solver profiles: named option sets in ``moebench/solvers/*.toml`` (e.g. ``highs-reference``).

A profile file holds::

    name = "highs-reference"
    backend = "highs"          # "highs" (milp-highs, milp-pyomo) or "cpsat"
    description = "..."
    [options]                  # moebench back-end options: threads, mip_rel_gap, mip_abs_gap
    threads = 1
    [solver]                   # passed verbatim to the solver (HiGHS options / CP-SAT parameters)
    presolve = "on"

A profile is selected by name (a file ``<name>.toml`` of the profiles shipped inside the package,
so a regular install finds them) or by a path to a ``.toml`` file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from moebench.errors import InputError
from moebench.schema.config import ProfileFile, load_toml

#: The shipped profiles (package data ``moebench/solvers/``).
SOLVERS_DIR = Path(__file__).resolve().parents[1] / "solvers"


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
        Profile name (``moebench/solvers/<name>.toml``) or path to a ``.toml`` file.
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
    data = load_toml(path, ProfileFile)
    if backend is not None and data.backend != backend:
        raise InputError(f"profile {name!r} is for back end {data.backend!r}, not {backend!r}", where="profile")
    options = {k: v for k, v in msgspec.structs.asdict(data.options).items() if v is not None}
    return Profile(
        name=data.name or path.stem,
        backend=data.backend,
        description=data.description,
        options=options,
        solver=dict(data.solver),
        path=str(path),
    )
