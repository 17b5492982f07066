"""``moebench data import``: rebuild a data folder from the upstream repositories.

Inputs are clones (or copies) a user made of

- deepseek-ai/ESFT: the clone, its ``results/expert_scores/`` folder, or a data folder's
  ``deepseek-v2-lite-esft/expert_scores/``; layer files as they are (``.txt``) or gzip;
- allenai/OLMoE: the clone or its ``scripts/routing_output/`` folder (the count pickles).

The output is the data folder moebench ships: ESFT layer files compressed by
:func:`moebench.data.manifest.gzip_bytes`, ``summary.json`` verbatim, both derived JSON files,
the licence texts, ``PROVENANCE.md`` and a ``MANIFEST.tsv`` hashing every original read. Given
the published files it reproduces the shipped folder byte for byte (with the zlib CPython links;
see :mod:`moebench.data.manifest`), and it says which inputs differ from the published ones.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from moebench.data import shipped_data_dir
from moebench.data.esft import (
    ESFT_COUNTS_JSON,
    ESFT_DIR,
    ESFT_LAYERS,
    ESFT_SOURCE,
    ESFT_TASKS,
    derived_counts,
    dump_json,
)
from moebench.data.esft import read_task as read_esft_task
from moebench.data.manifest import (
    GZIP,
    MANIFEST,
    NOT_STORED,
    ManifestRow,
    gzip_bytes,
    manifest_bytes,
    read_manifest,
    row_for,
)
from moebench.data.olmoe import OLMOE_COMMIT, OLMOE_COUNTS_JSON, counts_json, find_routing_output
from moebench.errors import InputError

ESFT_REPO = "deepseek-ai/ESFT"
OLMOE_REPO = "allenai/OLMoE"
ESFT_LICENSE = ("LICENSE-CODE", "LICENSES/deepseek-ai_ESFT_LICENSE-CODE_MIT.txt")
OLMOE_LICENSE = ("LICENSE", "LICENSES/allenai_OLMoE_LICENSE_Apache-2.0.txt")
PROVENANCE = "PROVENANCE.md"
UNKNOWN_COMMIT = "unknown (differs from the published file)"


@dataclass
class ImportResult:
    """What :func:`import_data` wrote and how it compares with the published data.

    Attributes
    ----------
    written : list of str
        Files written, relative to the output folder.
    same : int
        Originals and derived files identical to the published ones (by content hash).
    different : list of str
        Those that differ from the published ones (or have no published counterpart).
    notes : list of str
        Anything worth saying (a licence text taken from the shipped copy, files not read).
    """

    written: list[str] = field(default_factory=list)
    same: int = 0
    different: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _published() -> dict[tuple[str, str], ManifestRow]:
    """Rows of the shipped manifest keyed by (repo, source path) and ("", local path)."""
    try:
        rows = read_manifest(shipped_data_dir())
    except InputError:
        return {}
    return {
        ("", r.local_path)
        if r.local_path != "-" and r.stored_as not in (GZIP, "verbatim")
        else (r.source_repo, r.source_path): r
        for r in rows
    }


class _Writer:
    """Collects files and manifest rows, comparing each with its published counterpart."""

    def __init__(self, root: Path, result: ImportResult) -> None:
        self.root, self.result = root, result
        self.rows: list[ManifestRow] = []
        self.published = _published()

    def _compare(self, key: tuple[str, str], sha: str, label: str) -> bool:
        pub = self.published.get(key)
        ok = pub is not None and pub.sha256 == sha
        if ok:
            self.result.same += 1
        else:
            self.result.different.append(label)
        return ok

    def original(self, local: str, repo: str, commit: str, src: str, content: bytes, stored: str) -> None:
        """An upstream file (written gzip-compressed or verbatim, or only recorded when ``local`` is ``-``)."""
        row = row_for(local, content, (repo, commit, src), stored)
        if not self._compare((repo, src), row.sha256, f"{repo}:{src}"):
            row = ManifestRow(local, repo, UNKNOWN_COMMIT, src, stored, row.size, row.sha256)
        self.rows.append(row)
        if local != "-":
            self._write(local, gzip_bytes(content) if stored == GZIP else content)

    def derived(self, local: str, source: tuple[str, str, str], content: bytes, stored: str = "derived") -> None:
        """A file computed by moebench (or its own documentation)."""
        self.rows.append(row_for(local, content, source, stored))
        self._compare(("", local), self.rows[-1].sha256, local)
        self._write(local, content)

    def licence(self, given: Path, data: Path, repo: str, commit: str, licence: tuple[str, str]) -> None:
        """The licence text from the clone (the given folder or an ancestor of the data), else the shipped copy."""
        name, rel = licence
        # in a clone the licence is at its root, in a data folder at its shipped path
        cands = [c for folder in (given, *data.parents[:3]) for c in (folder / name, folder / rel)]
        text = next((c.read_bytes() for c in cands if c.is_file()), None)
        if text is None:
            self.result.notes.append(f"{name} not found beside {given}: copied the shipped {rel}")
            text = (shipped_data_dir() / rel).read_bytes()
        self.original(rel, repo, commit, name, text, "verbatim")

    def _write(self, local: str, data: bytes) -> None:
        path = self.root / local
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.result.written.append(local)


def find_expert_scores(path: Path) -> Path:
    """The ESFT ``expert_scores`` folder at or under ``path``.

    Raises
    ------
    InputError
        When no candidate holds the task folders.
    """
    for cand in (path / "results" / "expert_scores", path / ESFT_DIR, path):
        if all((cand / t).is_dir() for t in ESFT_TASKS):
            return cand
    raise InputError(
        f"no ESFT traces found (expected results/expert_scores/<{'|'.join(ESFT_TASKS)}>/expert_weights_<1..26>.txt)",
        file=str(path),
    )


def _import_esft(src: Path, w: _Writer) -> None:
    scores = find_expert_scores(src)
    commit = ESFT_SOURCE["commit"]
    tasks = {}
    for task in ESFT_TASKS:
        paths, raws = read_esft_task(scores, task, weights=True)
        tasks[task] = paths
        for layer, raw in zip(range(1, ESFT_LAYERS + 1), raws):
            name = f"{task}/expert_weights_{layer}.txt"
            w.original(f"{ESFT_DIR}/{name}.gz", ESFT_REPO, commit, f"results/expert_scores/{name}", raw, GZIP)
        summary = scores / task / "summary.json"
        if summary.is_file():
            rel = f"{task}/summary.json"
            w.original(
                f"{ESFT_DIR}/{rel}", ESFT_REPO, commit, f"results/expert_scores/{rel}", summary.read_bytes(), "verbatim"
            )
        else:
            w.result.notes.append(f"{task}/summary.json not found in {scores}: not copied (moebench does not read it)")
    w.licence(src, scores, ESFT_REPO, commit, ESFT_LICENSE)
    sources = "results/expert_scores/<task>/expert_weights_<1..26>.txt"
    w.derived(ESFT_COUNTS_JSON, (ESFT_REPO, commit, sources), dump_json(derived_counts(tasks)))


def _import_olmoe(src: Path, w: _Writer) -> None:
    routing = find_routing_output(src)
    data, read = counts_json(routing)
    for path in read:
        rel = "scripts/routing_output/" + path.relative_to(routing).as_posix()
        w.original(
            "-", OLMOE_REPO, OLMOE_COMMIT, rel, path.read_bytes(), f"{NOT_STORED} (numbers in {OLMOE_COUNTS_JSON})"
        )
    skipped = sorted(
        p.relative_to(routing).as_posix()
        for p in routing.rglob("*.pkl")
        if p not in set(read) and "eid2token" not in p.parts
    )
    if skipped:
        w.result.notes.append(f"not read (not a count file moebench knows): {', '.join(skipped[:5])}")
    w.licence(src, routing, OLMOE_REPO, OLMOE_COMMIT, OLMOE_LICENSE)
    sources = "scripts/routing_output/{olmoe,mistral,olmoe-sft,olmoe-dpo}/expert_counts*/<domain>.pkl"
    w.derived(OLMOE_COUNTS_JSON, (OLMOE_REPO, OLMOE_COMMIT, sources), dump_json(data))


def import_data(out: Path, esft: Path | None = None, olmoe: Path | None = None, *, force: bool = False) -> ImportResult:
    """Build a data folder at ``out`` from upstream clones.

    Parameters
    ----------
    out
        Output folder: must not exist, be empty, or (with ``force``) be a data folder (holding
        ``MANIFEST.tsv``), which is then replaced.
    esft, olmoe
        The upstream sources (at least one); a part not given is not written.
    force
        Replace an existing data folder.

    Raises
    ------
    InputError
        For a bad output folder, missing or malformed inputs, or a refused pickle.
    """
    if esft is None and olmoe is None:
        raise InputError("give --esft and/or --olmoe (the upstream clones to import)", where="data import")
    if out.exists():
        if not out.is_dir():
            raise InputError("exists and is not a folder", file=str(out))
        if any(out.iterdir()) and not (force and (out / MANIFEST).is_file()):
            raise InputError(
                "folder is not empty (--force replaces a data folder, one holding MANIFEST.tsv)", file=str(out)
            )
    result = ImportResult()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".moebench-import-", dir=out.parent))
    try:
        w = _Writer(tmp, result)
        if esft is not None:
            _import_esft(esft, w)
        if olmoe is not None:
            _import_olmoe(olmoe, w)
        w.derived(PROVENANCE, ("moebench", "-", "-"), (shipped_data_dir() / PROVENANCE).read_bytes(), "moebench")
        (tmp / MANIFEST).write_bytes(manifest_bytes(w.rows))
        result.written.append(MANIFEST)
        # inputs are fully read before anything at `out` changes, so importing in place works
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return result
