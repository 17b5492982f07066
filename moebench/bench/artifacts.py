"""The instance files a report may cite, written by the runner once the references are final.

A report is a function of the files of a results folder: the table, the references and the
artifacts listed here. After a run the runner writes

- ``stress/<name>-s<seed>.json.gz``: the worst instance of every stress search (written as each
  search finishes, with its outcome in ``meta["stress"]``);
- ``violations/<instance>.json.gz``: the instance of every run below a claim (a declared
  guarantee where its conditions hold, or a suite's claim; :mod:`moebench.bench.claims`);
- ``artifacts.json``: the manifest of both, by instance name and content hash, so a report
  never reloads a suite, reads trace data or regenerates an instance.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moebench.bench.claims import attach_references, cited_runs, stress_records
from moebench.bench.references import Reference
from moebench.errors import InputError
from moebench.instance import Instance
from moebench.instance_file import save_instance
from moebench.json_io import write_atomically
from moebench.schema.rows import conform, table_frame

#: The manifest file of a results folder.
MANIFEST = "artifacts.json"
FORMAT = "moebench-artifacts/1"

Key = tuple[str, str]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_artifacts(
    out: Path,
    rows: list[dict[str, Any]],
    refs: Mapping[Key, Reference],
    instances: Iterable[Instance],
) -> list[Path]:
    """Write the instances of the runs below a claim and the manifest of every cited instance.

    Parameters
    ----------
    out
        The results folder.
    rows
        The rows of the run (method runs and stress searches).
    refs
        The final references.
    instances
        The suite's instances (the runs' instances are written from them).

    Returns
    -------
    list of Path
        The files written (the manifest last).
    """
    table = conform(table_frame(rows))
    runs = table[table["kind"] != "stress"].reset_index(drop=True)
    stress = table[table["kind"] == "stress"].reset_index(drop=True)
    entries: list[dict[str, Any]] = []
    files: list[Path] = []
    for rec in stress_records(stress):
        if rec.get("instance_file"):
            entries.append(
                {
                    "instance": rec["instance"],
                    "instance_hash": rec["instance_hash"],
                    "file": rec["instance_file"],
                    "why": "stress worst case",
                    "task_id": rec["task_id"],
                }
            )
    if not runs.empty:
        scored = attach_references(runs, dict(refs))
        cited = scored[cited_runs(scored, stress_records(stress))]
        by_key = {(i.name, i.content_hash): i for i in instances}
        for key in dict.fromkeys(zip(cited["instance"], cited["instance_hash"])):
            inst = by_key.get(key)
            if inst is None:  # not an instance of this suite (a row of an earlier run): nothing to write
                continue
            rel = Path("violations") / f"{_safe(key[0])}.json.gz"
            save_instance(inst, out / rel)
            files.append(out / rel)
            entries.append(
                {"instance": key[0], "instance_hash": key[1], "file": rel.as_posix(), "why": "below a claim"}
            )
    manifest = out / MANIFEST
    write_atomically(manifest, json.dumps({"format": FORMAT, "instances": entries}, indent=2) + "\n")
    return [*files, manifest]


def read_artifacts(folder: Path | None) -> dict[Key, str]:
    """The cited instance files of a results folder: (name, content hash) -> path relative to it
    (empty without a manifest).

    Raises
    ------
    InputError
        For a manifest that is not one.
    """
    if folder is None or not (folder / MANIFEST).is_file():
        return {}
    path = folder / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"expected format {FORMAT!r}")
        return {(str(e["instance"]), str(e["instance_hash"])): str(e["file"]) for e in doc["instances"]}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not an artifacts manifest: {exc}", file=str(path)) from None
