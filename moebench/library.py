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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.families import generate
from moebench.instance import Instance
from moebench.schema.config import LibraryFile, load_toml

ROOT = Path(__file__).resolve().parents[1] / "instances"
TIERS = ("small", "medium", "hard")


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
    doc, _ = load_toml(p, LibraryFile)
    entries, names = [], set()
    for i, e in enumerate(doc.instance):
        if e.name in names:
            raise InputError(f"duplicate name {e.name!r}", file=str(p), where=f"instance[{i}].name")
        names.add(e.name)
        entries.append(Entry(e.name, e.family, dict(e.params), e.seed, e.tier, e.store, e.hash, e.note))
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
