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

The library is a folder of the project, not of the installed package: its manifest is
``instances/manifest.toml`` under the current folder (:func:`default_manifest`) unless a path is
given, so a regular install never looks inside site-packages for it. Model-derived recipes read
the trace data folder (``--data-dir``, else ``$MOEBENCH_DATA``, else the shipped one).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from moebench.errors import InputError
from moebench.families import generate, get_family
from moebench.instance import Instance
from moebench.schema.config import LibraryEntry, LibraryFile, load_toml

#: The library folder, relative to the current folder.
LIBRARY_DIR = Path("instances")


class Entry(LibraryEntry):
    """One library instance (a recipe): the keys of :class:`~moebench.schema.config.LibraryEntry`."""

    def generate(self, data_dir: str | None = None) -> Instance:
        """Run the recipe (``data_dir`` goes only to families that read a data folder)."""
        params = dict(self.params)
        if data_dir is not None and "data_dir" not in params:
            if "data_dir" in {p.name for p in get_family(self.family).params}:
                params["data_dir"] = data_dir
        return generate(self.family, params, seed=self.seed, instance_name=self.name)

    def path(self, root: Path) -> Path:
        """Where the built file lives."""
        return (root if self.store == "file" else root / "cache") / f"{self.name}.json.gz"


def default_manifest() -> Path:
    """``instances/manifest.toml`` under the current folder.

    Raises
    ------
    InputError
        When there is none (run from a checkout of the project, or give ``--manifest``).
    """
    path = Path.cwd() / LIBRARY_DIR / "manifest.toml"
    if not path.is_file():
        raise InputError(
            "no instance library here: run from a folder holding instances/manifest.toml, or give --manifest",
            file=str(path),
        )
    return path


def load_manifest(path: str | Path) -> list[Entry]:
    """Read and validate the manifest.

    Raises
    ------
    InputError
        Naming the file, the entry and the reason.
    """
    p = Path(path)
    doc = load_toml(p, LibraryFile)
    entries, names = [], set()
    for i, e in enumerate(doc.instance):
        if e.name in names:
            raise InputError(f"duplicate name {e.name!r}", file=str(p), where=f"instance[{i}].name")
        names.add(e.name)
        entries.append(Entry(**msgspec.structs.asdict(e)))
    return entries


def build(
    entries: list[Entry], root: Path, *, write: bool = True, data_dir: str | None = None
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
