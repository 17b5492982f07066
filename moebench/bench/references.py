"""Reference values per instance, kept in a MIPLIB ``.solu``-style text file, with their evidence.

Format ``moebench-solu/1``: UTF-8 text, one fact per line, ``#`` starts a comment::

    # moebench-solu/1
    =opt=   uniform-L2-E6-K2-N2-s0  12.5  hash=<sha256> latency=30.1 method=bruteforce placement=<sha256>
    =best=  clustered-L8-E64-K2-N3-s0  40.2  hash=<sha256> latency=51.0 method=milp-highs placement=<sha256>
    =bound= clustered-L8-E64-K2-N3-s0  44.9  hash=<sha256> method=milp-highs

- The value is the **gain** R = Lat(empty) - Lat(X) in ms (the maximized objective on which
  guarantees are stated); ``latency`` is the matching Lat(X), so latency ratios need no
  instance file.
- ``=opt=``: a proven optimal gain (an exact run finished with status ``optimal``, which holds to
  1e-9 of the gain, see :mod:`moebench.tolerances`).
- ``=best=``: the best gain of a feasible placement found by an exact run, not proven.
- ``=bound=``: the smallest safe upper bound on the optimal gain over all exact runs
  (absent when an optimum is known).
- Evidence: ``placement=<hash>`` names the placement achieving the value (its
  :func:`~moebench.placement.placement_hash`), stored beside the file as
  ``reference-placements/<hash>.json`` (a ``moebench-placement/1`` file with ``instance_hash``);
  ``moebench references check FOLDER`` recomputes every value from it.
- A reference belongs to the instance *content*: it is keyed by name and ``hash`` (the
  instance's content hash); a line whose hash differs from the instance's is stale and ignored.
- Names follow :data:`moebench.instance.NAME_PATTERN` (no spaces, line breaks or ``#``): a name
  outside it is refused on write and reported on read, so no name can break or inject a line.
- Numbers are written with ``repr`` (round-trip exact). Unknown ``key=value`` fields are
  ignored on read and dropped when the file is rewritten.

Consistency (SPEC section 5, :func:`reconcile`): wherever references are made or merged, every
claim is checked against every verified placement of the same instance (any method, any run, the
reference file's own value): a bound below the gain of a placement, or an ``optimal`` that
another placement beats, is a :class:`Problem` naming the method and both numbers, and never
becomes a reference.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.instance import valid_name
from moebench.json_io import write_atomically
from moebench.placement import FORMAT as PLACEMENT_FORMAT
from moebench.placement import HASH_RE, placement_hash
from moebench.status import WITH_PLACEMENT  # statuses whose placement is an incumbent
from moebench.tolerances import OPTIMAL_RTOL, bound_below, noise, optimum_beaten

HEADER = "# moebench-solu/1"
#: Folder (beside the reference file) holding the placements behind the values.
PLACEMENTS_DIR = "reference-placements"


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
        Best safe upper bound on the optimal gain (equals ``gain`` when proven).
    method, bound_method : str or None
        Which runs gave the value and the bound.
    placement : str or None
        Placement hash of the evidence for ``gain`` (see the module docstring).
    """

    name: str
    hash: str
    gain: float | None = None
    latency: float | None = None
    proven: bool = False
    bound: float | None = None
    method: str | None = None
    bound_method: str | None = None
    placement: str | None = None


Key = tuple[str, str]


@dataclass(frozen=True)
class Problem:
    """An inconsistency found while making or checking references.

    Attributes
    ----------
    instance, hash : str
        The instance.
    kind : str
        ``"bound below placement"``, ``"optimum beaten"``, ``"value not reproduced"``,
        ``"no evidence"`` or ``"instance not found"``.
    method : str
        The method whose claim is refuted (or the reference's method).
    message : str
        One line naming the method and both numbers.
    """

    instance: str
    hash: str
    kind: str
    method: str
    message: str

    def __str__(self) -> str:
        return f"{self.instance}: {self.message}"

    @property
    def row_error(self) -> str:
        """The ``error`` text of a results row whose claim this refutes (its status becomes ``error``)."""
        return f"refuted: {self.message}"


@dataclass
class Reconciled:
    """The result of :func:`reconcile`.

    Attributes
    ----------
    refs : dict
        The references after the merge (only claims that survived the checks).
    problems : list of Problem
        Every refuted claim.
    placements : dict
        Placement hash -> ``(instance name, instance hash, triples)`` for the evidence of the
        references that came from ``rows`` (to be written by :func:`write_references`).
    rejected : dict
        Row index -> problem, for the rows whose claim was refuted (callers mark them).
    """

    refs: dict[Key, Reference]
    problems: list[Problem] = field(default_factory=list)
    placements: dict[str, tuple[str, str, list[list[int]]]] = field(default_factory=dict)
    rejected: dict[int, Problem] = field(default_factory=dict)


def check_names(names: Iterable[str], file: str | None = None) -> None:
    """Raise :class:`InputError` for the first name a reference file could not hold.

    Raises
    ------
    InputError
        Naming the instance (escaped) and the rule.
    """
    for name in names:
        if not valid_name(name):
            raise InputError(
                f"instance name {json.dumps(name)} is not allowed: names are a letter or digit, then up to 199 of "
                "A-Z a-z 0-9 . _ + = , : @ % ( ) [ ] - (no spaces or line breaks)",
                file=file,
                where="instances",
            )


def read_references(path: str | os.PathLike[str]) -> dict[Key, Reference]:
    """Read a reference file (a missing file is an empty reference set).

    Raises
    ------
    InputError
        For a malformed line, naming the file, the line number and the reason.
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
        if not valid_name(name):
            raise InputError(f"instance name {name!r} does not match the name rule", file=str(p), where=where)
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"value {raw!r} is not a number", file=str(p), where=where) from None
        if not math.isfinite(value):
            raise InputError(f"value {raw!r} is not finite", file=str(p), where=where)
        bad = [kv for kv in parts[3:] if "=" not in kv]
        if bad:
            raise InputError(f"expected key=value, got {bad[0]!r}", file=str(p), where=where)
        fields = dict(kv.split("=", 1) for kv in parts[3:])
        if "hash" not in fields:
            raise InputError("missing hash=<content hash>", file=str(p), where=where)
        evidence = fields.get("placement")
        if evidence is not None and not HASH_RE.fullmatch(evidence):
            raise InputError(f"placement={evidence!r} is not a placement hash", file=str(p), where=where)
        key = (name, fields["hash"])
        ref = refs.get(key, Reference(name, fields["hash"]))
        try:
            lat = float(fields["latency"]) if "latency" in fields else None
        except ValueError:
            raise InputError(f"latency={fields['latency']!r} is not a number", file=str(p), where=where) from None
        if tag == "=bound=":
            ref = replace(ref, bound=value, bound_method=fields.get("method"))
        else:
            ref = replace(
                ref, gain=value, latency=lat, proven=tag == "=opt=", method=fields.get("method"), placement=evidence
            )
        if ref.proven:
            ref = replace(ref, bound=ref.gain, bound_method=ref.method)
        refs[key] = ref
    return refs


def placement_path(refs_path: str | os.PathLike[str], phash: str) -> Path:
    """Where the evidence placement ``phash`` of the reference file ``refs_path`` is stored."""
    return Path(refs_path).parent / PLACEMENTS_DIR / f"{phash}.json"


def write_references(
    path: str | os.PathLike[str],
    refs: dict[Key, Reference],
    placements: dict[str, tuple[str, str, list[list[int]]]] | None = None,
) -> None:
    """Write the reference file atomically (temp file, fsync, rename), sorted by name, and the
    evidence placements not yet stored (``placements``: hash -> (name, instance hash, triples)).

    Raises
    ------
    InputError
        When an instance name does not match :data:`moebench.instance.NAME_PATTERN` (it could
        break or inject lines); nothing is written then.
    """
    check_names((r.name for r in refs.values()), file=str(path))
    lines = [HEADER, "# value = gain R = Lat(empty) - Lat(X) in ms; see moebench/bench/references.py"]
    for (_, _), r in sorted(refs.items()):
        if r.gain is not None:
            tag = "=opt=" if r.proven else "=best="
            extra = f" latency={r.latency!r}" if r.latency is not None else ""
            evidence = f" placement={r.placement}" if r.placement else ""
            lines.append(f"{tag} {r.name} {r.gain!r} hash={r.hash}{extra} method={_token(r.method)}{evidence}")
        if r.bound is not None and not r.proven:
            lines.append(f"=bound= {r.name} {r.bound!r} hash={r.hash} method={_token(r.bound_method)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    used = {r.placement for r in refs.values() if r.placement}
    for phash, (name, ihash, triples) in (placements or {}).items():
        target = placement_path(p, phash)
        if phash in used and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            doc = {"format": PLACEMENT_FORMAT, "instance": name, "instance_hash": ihash, "placement": triples}
            write_atomically(target, json.dumps(doc, separators=(",", ":")) + "\n")
    write_atomically(p, "\n".join(lines) + "\n")


def _token(method: str | None) -> str:
    """A method name as one whitespace-free token (method names have no spaces; be safe anyway)."""
    return "".join(str(method).split()) or "None"


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _true(v: Any) -> bool:
    return v is True or str(v).lower() in ("true", "1", "1.0")


def _triples(v: Any) -> list[list[int]] | None:
    """The placement column of a row (a list of triples, or its JSON text), None when absent."""
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if v is None or isinstance(v, float):
        return None
    try:
        return [[int(a), int(b), int(c)] for a, b, c in v]
    except (TypeError, ValueError):
        return None


@dataclass
class _Row:
    index: int
    method: str
    exact: bool
    status: str
    gain: float | None
    latency: float | None
    bound: float | None
    tolerance: float
    triples: list[list[int]] | None


def reconcile(refs: dict[Key, Reference], rows: Iterable[dict[str, Any]], require_evidence: bool = False) -> Reconciled:
    """Merge the results ``rows`` into ``refs``, keeping only claims that every placement supports.

    Placements: every row with a usable status and a feasible placement (any method) and the
    reference file's own value. Claims: the bounds and ``optimal`` statuses of exact runs
    (``method_kind == "exact"``) and the file's ``=opt=`` / ``=bound=``. A bound below the best
    placement's gain, or an optimum that a placement beats by more than the claim's tolerance,
    is a :class:`Problem` and is dropped. Of the rest, a proven optimum beats everything;
    otherwise the best gain of an exact run and the smallest bound are kept (a heuristic's gain
    is never a reference value, but it does refute claims). An ``optimal`` with a tolerance
    looser than :data:`~moebench.tolerances.OPTIMAL_RTOL` counts as a placement and a bound only.
    A value without evidence gets the placement of any row (any method) that achieves it; with
    ``require_evidence`` a file value that still has none is dropped (its bound is kept), which
    is how files written before evidence existed are migrated.
    """
    out = Reconciled(refs={})
    grouped: dict[Key, list[_Row]] = {}
    lat0: dict[Key, float] = {}
    for i, row in enumerate(rows):
        key = (str(row.get("instance")), str(row.get("instance_hash")))
        ok = row.get("status") in WITH_PLACEMENT and _true(row.get("feasible"))
        tol = _num(row.get("tolerance"))
        r = _Row(
            i,
            str(row.get("method")),
            row.get("method_kind") == "exact",
            str(row.get("status")),
            _num(row.get("gain")) if ok else None,
            _num(row.get("latency")) if ok else None,
            _num(row.get("bound")) if ok else None,
            OPTIMAL_RTOL if tol is None else tol,
            _triples(row.get("placement")),
        )
        grouped.setdefault(key, []).append(r)
        e = _num(row.get("empty_latency"))
        if e is not None:
            lat0[key] = e
    for key in sorted(set(refs) | set(grouped)):
        old = refs.get(key)
        rows_k = grouped.get(key, [])
        e = lat0.get(key, 1.0)
        if old is not None and old.gain is not None and not old.placement:
            old = _with_evidence(out, key, old, rows_k, e)
            if require_evidence and not old.placement:
                old = replace(old, gain=None, latency=None, proven=False, method=None)
                old = old if old.bound is not None else None
        _merge_one(out, key, old, rows_k, e)
    return out


def _with_evidence(out: Reconciled, key: Key, ref: Reference, rows: list[_Row], lat0: float) -> Reference:
    """``ref`` with the placement of a row achieving its value (up to the evaluator's noise), if any."""
    for r in rows:
        if r.gain is not None and r.triples is not None and abs(r.gain - ref.gain) <= noise(lat0):
            return replace(ref, placement=_evidence(out, key, r))
    return ref


def _merge_one(out: Reconciled, key: Key, old: Reference | None, rows: list[_Row], lat0: float) -> None:
    name, ihash = key
    placed = [r for r in rows if r.gain is not None]
    exact_rows = [r for r in placed if r.exact]
    # the best verified placement (any method; the first of equals) and the file's own value
    best_gain, best_by = max(((r.gain, r.method) for r in placed), key=lambda b: b[0], default=(-math.inf, ""))
    if old is not None and old.gain is not None and old.gain > best_gain:
        best_gain, best_by = old.gain, f"{old.method} (reference file)"

    def refute(kind: str, method: str, message: str, row: _Row | None = None) -> None:
        p = Problem(name, ihash, kind, method, message)
        out.problems.append(p)
        if row is not None:
            out.rejected[row.index] = p

    # claims from the reference file
    file_opt = old is not None and old.proven and old.gain is not None
    file_bound = None if old is None else old.bound
    if file_opt and optimum_beaten(old.gain, best_gain, lat0):
        refute(
            "optimum beaten",
            str(old.method),
            f"=opt= {old.gain!r} by {old.method} (reference file) is beaten by {best_by} with gain {best_gain!r}",
        )
        file_opt, file_bound = False, None
    elif file_bound is not None and bound_below(file_bound, best_gain, lat0):
        refute(
            "bound below placement",
            str(old.bound_method),
            f"=bound= {file_bound!r} by {old.bound_method} (reference file) is below the gain {best_gain!r} "
            f"of a placement by {best_by}",
        )
        file_bound = None
    # claims from the rows (exact runs)
    proven: list[_Row] = []
    bounds: list[tuple[float, str]] = []
    for r in exact_rows:
        if r.status == "optimal" and optimum_beaten(r.gain, best_gain, lat0, r.tolerance):
            refute(
                "optimum beaten",
                r.method,
                f"optimal gain {r.gain!r} by {r.method} is beaten by {best_by} with gain {best_gain!r}",
                r,
            )
            continue
        if r.bound is not None and bound_below(r.bound, best_gain, lat0):
            refute(
                "bound below placement",
                r.method,
                f"bound {r.bound!r} by {r.method} is below the gain {best_gain!r} of a placement by {best_by}",
                r,
            )
            continue
        if r.bound is not None:
            bounds.append((r.bound, r.method))
        if r.status == "optimal" and r.tolerance <= OPTIMAL_RTOL:
            proven.append(r)
            bounds.append((r.gain, r.method))
    if file_bound is not None:
        bounds.append((file_bound, str(old.bound_method)))
    ref: Reference | None = None
    if proven:
        r = max(proven, key=lambda r: r.gain)
        ref = Reference(name, ihash, r.gain, r.latency, True, r.gain, r.method, r.method, _evidence(out, key, r))
        if file_opt and old.gain >= r.gain:
            ref = replace(old, bound=old.gain, bound_method=old.method)
    elif file_opt:
        ref = old
    else:
        cands: list[tuple[float, Reference]] = []
        if old is not None and old.gain is not None:
            cands.append((old.gain, replace(old, proven=False, bound=None, bound_method=None)))
        for r in exact_rows:
            cands.append((r.gain, Reference(name, ihash, r.gain, r.latency, False, method=r.method)))
        if cands:
            gain, ref = max(cands, key=lambda c: c[0])
            row = next((r for r in exact_rows if r.gain == gain and ref.method == r.method), None)
            if row is not None:
                ref = replace(ref, placement=_evidence(out, key, row))
        elif bounds:
            ref = Reference(name, ihash)
        if ref is not None and bounds:
            b, m = min(bounds)
            ref = replace(ref, bound=b, bound_method=m)
    if ref is not None:
        out.refs[key] = ref


def _evidence(out: Reconciled, key: Key, row: _Row) -> str | None:
    """The placement hash of ``row`` (recorded in ``out.placements``), None without a placement."""
    if row.triples is None:
        return None
    phash = placement_hash(key[1], row.triples)
    out.placements[phash] = (key[0], key[1], row.triples)
    return phash
