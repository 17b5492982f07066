"""Reference values per instance, kept in a MIPLIB ``.solu``-style text file.

Format ``moebench-solu/1``: UTF-8 text, one fact per line, ``#`` starts a comment::

    # moebench-solu/1
    =opt=   uniform-L2-E6-K2-N2-s0  12.5  hash=<sha256> latency=30.1 method=bruteforce
    =best=  clustered-L8-E64-K2-N3-s0  40.2  hash=<sha256> latency=51.0 method=milp-highs
    =bound= clustered-L8-E64-K2-N3-s0  44.9  hash=<sha256> method=milp-highs

- The value is the **gain** R = Lat(empty) - Lat(X) in ms (the maximized objective on which
  guarantees are stated); ``latency`` is the matching Lat(X), so latency ratios need no
  instance file.
- ``=opt=``: a proven optimal gain (an exact run finished with status ``optimal``).
- ``=best=``: the best gain of a feasible placement found by an exact run, not proven.
- ``=bound=``: the smallest proven upper bound on the optimal gain over all exact runs
  (absent when an optimum is known).
- A reference belongs to the instance *content*: it is keyed by name and ``hash`` (the
  instance's content hash); a line whose hash differs from the instance's is stale and ignored.
- Numbers are written with ``repr`` (round-trip exact). Unknown ``key=value`` fields are
  ignored on read and dropped when the file is rewritten.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.status import WITH_PLACEMENT as _WITH_PLACEMENT  # statuses whose placement is an incumbent

HEADER = "# moebench-solu/1"


@dataclass(frozen=True)
class Reference:
    """What is known about the optimum of one instance.

    Attributes
    ----------
    name, hash : str
        Instance name and content hash.
    gain : float or None
        Proven optimal gain (``proven``) or best known gain.
    latency : float or None
        Lat of the placement achieving ``gain``.
    proven : bool
        True when ``gain`` is a proven optimum.
    bound : float or None
        Best proven upper bound on the optimal gain (equals ``gain`` when proven).
    method, bound_method : str or None
        Which runs gave the value and the bound.
    """

    name: str
    hash: str
    gain: float | None = None
    latency: float | None = None
    proven: bool = False
    bound: float | None = None
    method: str | None = None
    bound_method: str | None = None


Key = tuple[str, str]


def read_references(path: str | os.PathLike[str]) -> dict[Key, Reference]:
    """Read a reference file (a missing file is an empty reference set).

    Raises
    ------
    InputError
        For a malformed line, naming the file and the line number.
    """
    p = Path(path)
    if not p.exists():
        return {}
    refs: dict[Key, Reference] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        where = f"line {lineno}"
        if len(parts) < 3 or parts[0] not in ("=opt=", "=best=", "=bound="):
            raise InputError("expected '=opt=|=best=|=bound= NAME VALUE key=value ...'", file=str(p), where=where)
        tag, name, raw = parts[0], parts[1], parts[2]
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"value {raw!r} is not a number", file=str(p), where=where) from None
        fields = dict(kv.split("=", 1) for kv in parts[3:] if "=" in kv)
        if "hash" not in fields:
            raise InputError("missing hash=<content hash>", file=str(p), where=where)
        key = (name, fields["hash"])
        ref = refs.get(key, Reference(name, fields["hash"]))
        lat = float(fields["latency"]) if "latency" in fields else None
        if tag == "=bound=":
            ref = replace(ref, bound=value, bound_method=fields.get("method"))
        else:
            ref = replace(ref, gain=value, latency=lat, proven=tag == "=opt=", method=fields.get("method"))
        if ref.proven:
            ref = replace(ref, bound=ref.gain, bound_method=ref.method)
        refs[key] = ref
    return refs


def write_references(path: str | os.PathLike[str], refs: dict[Key, Reference]) -> None:
    """Write the reference file atomically (temp file, fsync, rename), sorted by name."""
    lines = [HEADER, "# value = gain R = Lat(empty) - Lat(X) in ms; see moebench/bench/references.py"]
    for (_, _), r in sorted(refs.items()):
        if r.gain is not None:
            tag = "=opt=" if r.proven else "=best="
            extra = f" latency={r.latency!r}" if r.latency is not None else ""
            lines.append(f"{tag} {r.name} {r.gain!r} hash={r.hash}{extra} method={r.method}")
        if r.bound is not None and not r.proven:
            lines.append(f"=bound= {r.name} {r.bound!r} hash={r.hash} method={r.bound_method}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def update_references(refs: dict[Key, Reference], rows: Iterable[dict[str, Any]]) -> dict[Key, Reference]:
    """Merge the results of exact runs (``method_kind == "exact"``) into ``refs``.

    A proven optimum beats everything; otherwise the best feasible gain and the smallest
    proven bound are kept. Rows of other methods, and rows without a usable placement, are
    ignored (a heuristic's gain is never a reference: references must come from exact runs).
    """
    out = dict(refs)
    for row in rows:
        if row.get("method_kind") != "exact" or row.get("status") not in _WITH_PLACEMENT:
            continue
        if row.get("feasible") is not True and str(row.get("feasible")).lower() != "true":
            continue
        gain, lat, bound = _num(row.get("gain")), _num(row.get("latency")), _num(row.get("bound"))
        if gain is None:
            continue
        key = (str(row["instance"]), str(row["instance_hash"]))
        ref = out.get(key, Reference(key[0], key[1]))
        method = str(row.get("method"))
        proven = row.get("status") == "optimal"
        if proven and not ref.proven:
            ref = Reference(key[0], key[1], gain, lat, True, gain, method, method)
        elif proven == ref.proven and (ref.gain is None or gain > ref.gain):
            ref = replace(ref, gain=gain, latency=lat, method=method)
            if proven:
                ref = replace(ref, bound=gain, bound_method=method)
        if not ref.proven and bound is not None and (ref.bound is None or bound < ref.bound):
            ref = replace(ref, bound=bound, bound_method=method)
        out[key] = ref
    return out
