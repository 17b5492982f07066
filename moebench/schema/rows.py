"""The row schema of results tables: every column, its type, and who produces it.

One row per task (a method run or a stress search) goes into the store (``results.jsonl``)
and the results table (``results.parquet`` / ``results.csv``). :data:`COLUMNS` declares each
column once; the table writer gives the columns these types (:func:`table_frame`), and every
reader gets them back typed with :func:`conform`, whatever the file format lost on the way (a
CSV has no booleans or missing integers), so no reader re-coerces cells itself.

Family parameters are flattened into ``param_<name>`` columns (:data:`PARAM_PREFIX`); their
types depend on the family, so they are not declared here (:func:`param_values` reads them as
numbers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moebench.encoding import dumps

if TYPE_CHECKING:
    import pandas as pd

#: Prefix of the flattened family parameters.
PARAM_PREFIX = "param_"


@dataclass(frozen=True)
class Column:
    """One declared column.

    Attributes
    ----------
    name : str
        Column name.
    dtype : str
        ``str``, ``int``, ``float``, ``bool`` or ``json`` (JSON text of a nested value).
    producer : str
        Who writes it: ``task``, ``instance``, ``record`` (the harness), ``method`` (the
        method's declaration), ``worker``, ``holdout``, ``stress`` or ``runner``.
    doc : str
        Meaning and unit.
    default : Any
        Value a reader gets where the row or the whole column has none (None: missing).
    """

    name: str
    dtype: str
    producer: str
    doc: str
    default: Any = None


def _cols(producer: str, *specs: tuple[Any, ...]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], producer, *s[2:]) for s in specs)


COLUMNS: tuple[Column, ...] = (
    *_cols(
        "task",
        ("task_id", "str", "stable hash of everything that determines the result"),
        ("kind", "str", "'method' (a method run) or 'stress' (an adversarial search)", "method"),
        ("role", "str", "'method' (benchmarked) or 'reference' (an exact reference run)", "method"),
        ("repetition", "int", "repetition index (0-based)"),
        ("method_options", "json", "the options the suite gave the method"),
    ),
    *_cols(
        "instance",
        ("instance", "str", "instance name"),
        ("instance_hash", "str", "content hash of the instance"),
        ("family", "str", "family that generated the instance ('file' for instance files)"),
        ("instance_seed", "int", "seed that generated the instance"),
        ("K", "int", "experts activated per token"),
        ("N", "int", "edge servers"),
        ("L", "int", "MoE layers"),
        ("G", "int", "experts over all layers"),
        ("M", "int", "activation sets over all layers"),
        ("E_max", "int", "experts of the largest layer"),
        ("binaries", "int", "placement variables N*G"),
        ("equal_sizes", "bool", "all experts have one size", False),
        ("one_size_per_layer", "bool", "one expert size per layer, whole multiples of the smallest", False),
        ("capacity_fraction", "float", "total capacity / size of all experts"),
        ("regime", "str", "regime tags of SPEC section 6 (moebench.regime)"),
    ),
    *_cols(
        "record",
        ("method", "str", "method name as the suite wrote it"),
        ("seed", "int", "seed given to the method"),
        ("status", "str", "moebench.status.Status"),
        ("latency", "float", "Lat(X), ms per token, recomputed by the evaluator"),
        ("gain", "float", "R = Lat(empty) - Lat(X), ms"),
        ("empty_latency", "float", "Lat(empty), ms"),
        ("solver_latency", "float", "the method's own Lat(X)"),
        ("bound", "float", "upper bound on the optimal gain claimed by the method"),
        ("gap", "float", "(bound - gain) / bound"),
        ("feasible", "bool", "the placement fits every capacity (false without a placement)", False),
        ("wall_time", "float", "seconds the run cost the caller (child start-up included)"),
        ("method_time", "float", "seconds of the method's own solve call"),
        ("method_cpu_time", "float", "CPU seconds of that call"),
        ("build_time", "float", "seconds building a model (exact methods)"),
        ("solve_time", "float", "seconds in the solver (exact methods)"),
        ("time_limit", "float", "wall-clock limit, s"),
        ("solver", "str", "back end"),
        ("solver_version", "str", "back-end version"),
        ("options", "json", "options the method actually used"),
        ("info", "json", "anything else the method recorded"),
        ("error", "str", "error text of failed, skipped or killed runs"),
        ("placement", "json", "[server, layer, expert] triples"),
        ("tolerance", "float", "relative gain tolerance of the status and bound (moebench.tolerances)"),
    ),
    *_cols(
        "worker",
        ("started_at", "str", "UTC start time"),
        ("host", "str", "host that ran the task"),
    ),
    *_cols(
        "method",
        ("method_kind", "str", "exact, approximation, heuristic or baseline"),
        ("deterministic", "bool", "same instance and seed give the same placement", False),
        ("guarantee_ratio", "float", "declared guarantee on R(method)/R(opt)"),
        ("guarantee_conditions", "str", "its conditions, ';'-separated"),
        ("guarantee_source", "str", "the theorem it comes from"),
        ("guarantee_applies", "bool", "the instance satisfies the guarantee's conditions", False),
    ),
    *_cols(
        "holdout",
        ("holdout_latency", "float", "Lat of the placement on the holdout twin"),
        ("holdout_gain", "float", "gain on the holdout twin"),
        ("holdout_empty_latency", "float", "Lat(empty) of the holdout twin"),
        (
            "token_sets",
            "json",
            "the placement scored on the instance, its holdout and its transfer twins (TOKEN_SET_FIELDS each)",
        ),
    ),
    *_cols(
        "stress",
        ("stress_name", "str", "the [[stress]] entry's name (file stem of its worst instances)"),
        ("stress_params", "json", "family parameters of the search"),
        ("budget", "float", "seconds of search"),
        ("reference", "str", "exact method giving the optimum"),
        ("steps", "int", "hill-climbing steps per restart"),
        ("worst_ratio", "float", "lowest gain ratio R(method)/R(opt) found"),
        ("gain_method", "float", "the method's gain on the worst instance"),
        ("gain_optimum", "float", "the optimal gain of the worst instance"),
        ("evaluations", "int", "instances scored"),
        ("restarts", "int", "random restarts"),
        ("elapsed", "float", "seconds the search ran"),
        ("history", "json", "[seconds, worst ratio] at each improvement"),
        ("violation", "bool", "the worst ratio is below a declared guarantee that applies", False),
        ("claim", "float", "a ratio the suite claims for the method (not declared by it)"),
        ("claim_source", "str", "where the claim comes from"),
        ("claim_conditions", "str", "when it is claimed to hold (free text, ';'-separated)"),
        ("claim_conditions_hold", "bool", "the worst instance satisfies the checkable claim conditions", False),
        ("claim_violated", "bool", "the worst ratio is below the claim where its conditions hold", False),
        ("instance_file", "str", "the worst instance, relative to the results folder"),
    ),
    *_cols(
        "runner",
        ("suite", "str", "suite name"),
        ("moebench_version", "str", "moebench version"),
        ("git_commit", "str", "commit of the moebench source tree"),
        ("machine", "str", "host, architecture, cores, system"),
        ("python_version", "str", "Python version"),
        ("package_versions", "json", "versions of the solver and data libraries"),
        ("finished_at", "str", "UTC time the row was stored"),
    ),
)
#: Points of the stored per-token quantile function (0, 1, ..., 100 %): the CDF figure's data.
CDF_POINTS = 101
#: Fields of one object of the ``token_sets`` column (:mod:`moebench.bench.holdout`), as typed
#: by :func:`token_set_frame`; the ``replay_*``, ``p*`` and ``quantiles`` fields only with replay.
TOKEN_SET_FIELDS: tuple[Column, ...] = _cols(
    "holdout",
    ("kind", "str", "'instance' (the instance itself), 'holdout' (its twin) or 'transfer' (a twin on another task)"),
    ("task", "str", "the task of the scored tokens"),
    ("which", "str", "the split part of the scored tokens (train or test)"),
    ("instance_hash", "str", "content hash of the scored instance (finds its reference)"),
    ("latency", "float", "Lat of the placement on the scored instance, ms per token"),
    ("gain", "float", "its gain, ms"),
    ("empty_latency", "float", "Lat(empty) of the scored instance, ms"),
    ("replay_tokens", "int", "tokens replayed (every sequence of the task's split part)"),
    ("replay_sequences", "int", "sequences replayed"),
    ("replay_mean", "float", "mean per-token latency of the replayed tokens, ms"),
    ("replay_empty_mean", "float", "the same with nothing cached, ms"),
    ("p50", "float", "median per-token latency, ms (numpy's linear interpolation)"),
    ("p90", "float", "90th percentile, ms"),
    ("p95", "float", "95th percentile, ms"),
    ("p99", "float", "99th percentile, ms"),
    ("replay_max", "float", "largest per-token latency, ms"),
    ("quantiles", "json", "per-token latency at the quantile levels 0, 1/(CDF_POINTS-1), ..., 1 (ms)"),
)
#: Columns by name.
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
#: Columns holding JSON text in the table (nested values in the store).
JSON_COLUMNS = tuple(c.name for c in COLUMNS if c.dtype == "json")
#: Columns left out of the CSV table (large; the parquet table and the store keep them).
CSV_DROP = ("placement", "history", "token_sets")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def table_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records (store lines) as the results table: nested values as JSON text, declared
    columns with their types (missing values kept missing), parameters as found."""
    import pandas as pd

    rows = []
    for rec in records:
        row = dict(rec)
        for col in JSON_COLUMNS:
            if col in row and not isinstance(row[col], str) and row[col] is not None:
                row[col] = dumps(row[col], sort_keys=True)
        rows.append(row)
    df = pd.DataFrame(rows)
    for name in df.columns:
        col = BY_NAME.get(name)
        if col is not None:
            df[name] = _typed(df[name], col.dtype, nullable=True)
        elif pd.api.types.is_object_dtype(df[name]):
            kinds = {type(v) for v in df[name] if not _missing(v)}
            if len(kinds) > 1 and not kinds <= {int, float}:
                # mixed cell types (e.g. parameters of file instances) cannot go to parquet: text them
                df[name] = [None if _missing(v) else str(v) for v in df[name]]
    return df


def conform(df: pd.DataFrame) -> pd.DataFrame:
    """A results table as every reader expects it: declared columns with their types, missing
    booleans false, missing columns with a declared default added (the table is not changed)."""
    out = df.copy()
    for col in COLUMNS:
        if col.name in out.columns:
            out[col.name] = _typed(out[col.name], col.dtype, nullable=False, default=col.default)
        elif col.default is not None and col.dtype == "str":
            out[col.name] = col.default
    return out


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """The typed column ``name`` of a conformed table, or an all-missing one when absent."""
    import pandas as pd

    if name in df.columns:
        return df[name]
    col = BY_NAME[name]
    if col.dtype == "float":
        return pd.Series(float("nan"), index=df.index, dtype=float)
    if col.dtype == "bool":
        return pd.Series(bool(col.default), index=df.index, dtype=bool)
    return pd.Series(col.default, index=df.index, dtype=object)


def param_values(df: pd.DataFrame, name: str) -> pd.Series:
    """A ``param_*`` column as numbers (NaN where a value is not a number)."""
    import pandas as pd

    return pd.to_numeric(df[name], errors="coerce")


def token_set_frame(df: pd.DataFrame, keys: Iterable[str] = ()) -> pd.DataFrame:
    """The ``token_sets`` column of a conformed table as a long, typed table.

    One row per (run, scored token set), with the run's ``keys`` columns (and ``run``, the row's
    index in ``df``) followed by :data:`TOKEN_SET_FIELDS` (``quantiles`` as a list of floats, or
    None). Runs without token sets give no row. A key named like a field is a ``ValueError``.
    """
    import pandas as pd

    names = [c.name for c in TOKEN_SET_FIELDS]
    keys = [k for k in keys if k in df.columns]
    clash = sorted(set(keys) & {"run", *names})
    if clash:
        raise ValueError(f"key column(s) {', '.join(clash)} clash with token-set fields")
    rows = []
    if "token_sets" in df.columns:
        for i, cell in df["token_sets"].items():
            sets = decode_json(cell)
            if not isinstance(sets, list):
                continue
            base = {"run": i, **{k: df.at[i, k] for k in keys}}
            for entry in sets:
                if isinstance(entry, Mapping):
                    rows.append({**base, **{n: entry.get(n) for n in names}})
    out = pd.DataFrame(rows, columns=["run", *keys, *names])
    for c in TOKEN_SET_FIELDS:
        if c.dtype != "json":
            out[c.name] = _typed(out[c.name], c.dtype, nullable=True)
    return out


def _typed(s: pd.Series, dtype: str, *, nullable: bool, default: Any = None) -> pd.Series:
    import pandas as pd

    if dtype == "float":
        return pd.to_numeric(s, errors="coerce").astype(float)
    if dtype == "int":
        v = pd.to_numeric(s, errors="coerce")
        if nullable:
            return v.astype("Int64")
        return v.astype("int64") if v.notna().all() else v.astype(float)
    if dtype == "bool":
        flags = s.map(_flag, na_action="ignore")
        if nullable:
            return flags.astype("boolean")
        return flags.fillna(bool(default)).astype(bool)
    # text and JSON text: missing as None
    return s.astype(object).where(s.notna(), None)


def _flag(v: Any) -> bool:
    """A boolean cell as written by any format: True/False, 'True'/'true'/'1', 1/1.0."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "1.0")
    return bool(v)


def decode_json(cell: Any) -> Any:
    """The value of a JSON-text cell (None for a missing cell)."""
    if _missing(cell):
        return None
    return json.loads(cell) if isinstance(cell, str) else cell
