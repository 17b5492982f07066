"""The curated instance library: a manifest of named recipes, regenerable bit for bit.

``instances/manifest.toml`` lists every library instance as a recipe::

    [[instance]]
    name = "clustered-k4-small"
    family = "clustered"
    params = { K = 4, layers = 3, experts = 8 }
    seed = 0
    tier = "small"       # small: proven optimal in seconds; medium; hard: stays open
    store = "file"       # "file": the generated file is committed; "recipe": only the recipe
    hash = "…"           # content hash of the generated instance (Instance.content_hash)
    note = "…"           # optional

Entries from generated families are small and committed as files; model-derived entries
(which read the trace data folder) are committed as recipes only, and built into
``instances/cache/`` (not committed). ``moebench instances library`` builds everything and
checks every content hash; ``--check`` only verifies.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.families import generate
from moebench.instance import Instance

ROOT = Path(__file__).resolve().parents[1] / "instances"
TIERS = ("small", "medium", "hard")
_KEYS = {"name", "family", "params", "seed", "tier", "store", "hash", "note"}


@dataclass(frozen=True)
class Entry:
    """One library instance (a recipe)."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    tier: str = "small"
    store: str = "file"
    hash: str | None = None
    note: str = ""

    def generate(self, data_dir: str | None = None) -> Instance:
        """Run the recipe."""
        params = dict(self.params)
        if data_dir is not None:
            params["data_dir"] = data_dir
        return generate(self.family, params, seed=self.seed, instance_name=self.name)

    def path(self, root: Path = ROOT) -> Path:
        """Where the built file lives."""
        return (root if self.store == "file" else root / "cache") / f"{self.name}.json.gz"


def load_manifest(path: str | Path = ROOT / "manifest.toml") -> list[Entry]:
    """Read and validate the manifest.

    Raises
    ------
    InputError
        Naming the file, the entry and the reason.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("file not found", file=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=str(p)) from None
    entries, names = [], set()
    for i, raw in enumerate(doc.get("instance", [])):
        where = f"instance[{i}]"
        unknown = set(raw) - _KEYS
        if unknown:
            raise InputError(f"unknown field {sorted(unknown)[0]!r}", file=str(p), where=where)
        for key in ("name", "family"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise InputError("missing or empty string", file=str(p), where=f"{where}.{key}")
        if raw["name"] in names:
            raise InputError(f"duplicate name {raw['name']!r}", file=str(p), where=f"{where}.name")
        names.add(raw["name"])
        tier, store = raw.get("tier", "small"), raw.get("store", "file")
        if tier not in TIERS:
            raise InputError(f"tier must be one of {', '.join(TIERS)}", file=str(p), where=f"{where}.tier")
        if store not in ("file", "recipe"):
            raise InputError("store must be 'file' or 'recipe'", file=str(p), where=f"{where}.store")
        entries.append(
            Entry(
                raw["name"],
                raw["family"],
                dict(raw.get("params", {})),
                int(raw.get("seed", 0)),
                tier,
                store,
                raw.get("hash"),
                raw.get("note", ""),
            )
        )
    return entries


def build(
    entries: list[Entry], root: Path = ROOT, *, write: bool = True, data_dir: str | None = None
) -> list[tuple[Entry, str, bool]]:
    """Generate every entry, compare its content hash with the manifest, write the files.

    Returns
    -------
    list of (entry, hash, matches)
        ``matches`` is true when the manifest has no hash yet or the hashes agree.
    """
    from moebench.instance_file import save_instance

    out = []
    for e in entries:
        inst = e.generate(data_dir)
        ok = e.hash is None or e.hash == inst.content_hash
        if write and ok:
            save_instance(inst, e.path(root))
        out.append((e, inst.content_hash, ok))
    return out
