"""``moebench references check FOLDER``: every reference reproduced from its placement, every bound
checked against every known placement.

FOLDER is a results folder (``references.solu``, ``results.parquet`` or ``results.jsonl``,
``suite.toml``) or the instance library (``references.solu``, ``manifest.toml``). For each
reference the check

1. loads its evidence (``reference-placements/<hash>.json``), whose content hash and instance
   hash must match the line;
2. finds the instance by content hash (instance files in FOLDER, the suite's instances, the
   library manifest) and recomputes gain and latency with the evaluator: they must equal the
   stated values up to the evaluator's rounding noise, and the placement must be feasible;
3. checks the bound (and an ``=opt=`` value) against every known placement of the instance: the
   evidence of every reference and every row of the results table with a feasible placement,
   recomputed where the instance is at hand (:mod:`moebench.tolerances`).

Every inconsistency is a :class:`~moebench.bench.references.Problem`; the CLI prints one line
each and exits 1, or prints a one-line summary and exits 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moebench.bench.references import Key, Problem, Reference, placement_path, read_references
from moebench.errors import InputError
from moebench.evaluate import evaluate
from moebench.instance import Instance
from moebench.placement import from_triples, placement_hash
from moebench.status import WITH_PLACEMENT
from moebench.tolerances import bound_below, noise, optimum_beaten


@dataclass
class CheckResult:
    """What :func:`check_folder` found.

    Attributes
    ----------
    refs_path : Path
        The reference file checked.
    references, proven : int
        References checked, and how many are ``=opt=``.
    placements : int
        Known placements compared with the bounds.
    problems : list of Problem
        Every inconsistency.
    """

    refs_path: Path
    references: int = 0
    proven: int = 0
    placements: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a clean check."""
        return (
            f"references check: {self.refs_path}: {self.references} references ({self.proven} optimal) reproduced "
            f"from their placements, {self.placements} placements within every bound: consistent"
        )


class InstanceFinder:
    """Instances of a folder by content hash, loaded lazily from the sources the folder has."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.found: dict[str, Instance] = {}
        self.notes: list[str] = []
        self._sources = self._source_iter()

    def get(self, content_hash: str) -> Instance | None:
        """The instance with this content hash, or None when no source of the folder has it."""
        while content_hash not in self.found:
            batch = next(self._sources, None)
            if batch is None:
                return None
            for inst in batch:
                self.found.setdefault(inst.content_hash, inst)
        return self.found[content_hash]

    def _source_iter(self) -> Iterator[list[Instance]]:
        from moebench.instance_file import load_instance

        files = sorted(p for ext in ("*.json", "*.json.gz") for p in self.folder.glob(ext))
        found = []
        for path in files:  # other JSON files (run.json, ...) are not instances
            try:
                found.append(load_instance(path))
            except InputError:
                continue
        yield found
        suite = self.folder / "suite.toml"
        if suite.exists():
            from moebench.bench.suite import load_suite

            try:
                yield load_suite(suite).instances()
            except InputError as exc:
                self.notes.append(f"{suite}: instances not available: {exc}")
        manifest = self.folder / "manifest.toml"
        if manifest.exists():
            yield from self._library(manifest)

    def _library(self, manifest: Path) -> Iterator[list[Instance]]:
        from moebench.instance_file import load_instance
        from moebench.library import load_manifest

        for entry in load_manifest(manifest):
            path = entry.path(manifest.parent)
            try:
                yield [load_instance(path) if path.exists() else entry.generate()]
            except InputError as exc:
                self.notes.append(f"{manifest}: {entry.name}: not available: {exc}")


def _rows(folder: Path) -> list[dict[str, Any]]:
    """The results rows of the folder (parquet table, else the JSON-lines store), [] without one."""
    table = folder / "results.parquet"
    if table.exists():
        import pandas as pd

        cols = ["instance", "instance_hash", "method", "status", "feasible", "gain", "placement", "empty_latency"]
        df = pd.read_parquet(table)
        return df[[c for c in cols if c in df.columns]].to_dict("records")
    store = folder / "results.jsonl"
    if store.exists():
        from moebench.bench.store import ResultStore

        return list(ResultStore(store).records())
    return []


def _known_gain(inst: Instance | None, triples: Any, recorded: Any) -> float | None:
    """The gain of a known placement: recomputed when the instance is at hand, else as recorded."""
    if isinstance(triples, str):
        try:
            triples = json.loads(triples)
        except ValueError:
            triples = None
    if inst is not None and triples is not None:
        try:
            ev = evaluate(inst, from_triples(inst, list(triples)))
        except InputError:
            return None
        return ev.gain if ev.feasible else None
    try:
        return float(recorded)
    except (TypeError, ValueError):
        return None


def check_folder(folder: str | os.PathLike[str]) -> CheckResult:
    """Check the references of ``folder`` (see the module docstring).

    Raises
    ------
    InputError
        When the folder has no reference file or it cannot be parsed.
    """
    base = Path(folder)
    refs_path = base if base.is_file() else base / "references.solu"
    if not refs_path.exists():
        raise InputError("no references.solu here", file=str(base))
    base = refs_path.parent
    refs = read_references(refs_path)
    res = CheckResult(refs_path, references=len(refs), proven=sum(r.proven for r in refs.values()))
    finder = InstanceFinder(base)
    known: dict[Key, list[tuple[float, str]]] = {}

    def problem(ref: Reference, kind: str, message: str) -> None:
        res.problems.append(Problem(ref.name, ref.hash, kind, str(ref.method), message))

    for key, ref in sorted(refs.items()):
        inst = finder.get(ref.hash)
        if inst is None:
            problem(ref, "instance not found", f"instance with content hash {ref.hash[:12]}... not found in {base}")
            continue
        if ref.gain is None:
            continue
        if not ref.placement:
            problem(ref, "no evidence", f"{'=opt=' if ref.proven else '=best='} {ref.gain!r} has no placement=<hash>")
            continue
        path = placement_path(refs_path, ref.placement)
        try:
            doc = json.loads(path.read_text())
            triples = doc["placement"]
            x = from_triples(inst, triples)
        except (OSError, ValueError, KeyError, TypeError, InputError) as exc:
            problem(ref, "no evidence", f"placement {path} unreadable: {exc}")
            continue
        if doc.get("instance_hash") != ref.hash or placement_hash(ref.hash, triples) != ref.placement:
            problem(ref, "no evidence", f"placement {path} does not match its hash or the instance's")
            continue
        ev = evaluate(inst, x)
        tol = noise(inst.empty_latency)
        if not ev.feasible or abs(ev.gain - ref.gain) > tol:
            problem(
                ref,
                "value not reproduced",
                f"{ref.gain!r} by {ref.method}: its placement gives gain {ev.gain!r}"
                + ("" if ev.feasible else " and is infeasible"),
            )
            continue
        if ref.latency is not None and abs(ev.latency - ref.latency) > tol:
            problem(ref, "value not reproduced", f"latency {ref.latency!r}: its placement gives {ev.latency!r}")
        known.setdefault(key, []).append((ev.gain, f"{ref.method} (reference)"))
    for row in _rows(base):
        key = (str(row.get("instance")), str(row.get("instance_hash")))
        if key not in refs or row.get("status") not in WITH_PLACEMENT or str(row.get("feasible")).lower() != "true":
            continue
        g = _known_gain(finder.found.get(key[1]), row.get("placement"), row.get("gain"))
        if g is not None:
            known.setdefault(key, []).append((g, str(row.get("method"))))
    for key, ref in sorted(refs.items()):
        inst = finder.found.get(ref.hash)
        lat0 = inst.empty_latency if inst is not None else 1.0
        for g, method in known.get(key, []):
            res.placements += 1
            if ref.bound is not None and bound_below(ref.bound, g, lat0):
                what = "=opt=" if ref.proven else "=bound="
                problem(ref, "bound below placement", f"{what} {ref.bound!r} is below the gain {g!r} of {method}")
            elif ref.proven and optimum_beaten(ref.gain, g, lat0):
                problem(ref, "optimum beaten", f"=opt= {ref.gain!r} is beaten by {method} with gain {g!r}")
        if ref.gain is not None and ref.bound is not None and bound_below(ref.bound, ref.gain, lat0):
            problem(ref, "bound below placement", f"=bound= {ref.bound!r} is below its own =best= {ref.gain!r}")
    return res


def references_command(args: Any) -> int:
    """``moebench references check FOLDER...``: exit 1 listing each inconsistency, else 0 and a summary."""
    status = 0
    for folder in args.folders:
        res = check_folder(folder)
        for p in res.problems:
            print(f"{res.refs_path}: {p.instance}: {p.kind}: {p.message}")
        if res.problems:
            status = 1
        else:
            print(f"moebench: {res.summary()}")
    return status
