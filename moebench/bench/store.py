"""The append-only results store and the final results table.

The store is a JSON-lines file, one record per finished task. Each record is written with a
single ``os.write`` of the complete line on an ``O_APPEND`` descriptor followed by
``os.fsync``, so a kill at any moment leaves either the whole record or, at worst, a torn
last line without its newline. Reading ignores a torn or unparsable last line; opening the
store for appending cuts it off first, so the next record starts on a fresh line.

The final table (:func:`write_table`) is built from the store: one row per task of the
suite, in task order, as parquet (pyarrow) and CSV, with the column types of the row schema
(:mod:`moebench.schema.rows`); :func:`read_table` gives them back typed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moebench.encoding import dumps
from moebench.errors import InputError
from moebench.json_io import write_atomically
from moebench.schema.rows import CSV_DROP, conform, table_frame


class ResultStore:
    """Append-only JSON-lines file of task records.

    Parameters
    ----------
    path
        The ``.jsonl`` file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    # ---- reading ---------------------------------------------------------------------
    def lines(self) -> Iterator[tuple[bytes, Any]]:
        """Every complete line, in file order, with its parsed JSON (None when it does not parse).

        A torn last line (no newline: the writer was killed mid-record) ends the file.
        """
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    yield raw, json.loads(raw)
                except (ValueError, RecursionError):
                    yield raw, None

    def records(self) -> Iterator[dict[str, Any]]:
        """Every complete record, in file order; a torn or corrupt line is skipped."""
        for _, rec in self.lines():
            if isinstance(rec, dict) and "task_id" in rec:
                yield rec

    # ---- writing ---------------------------------------------------------------------
    def open(self, fresh: bool = False) -> None:
        """Open for appending; ``fresh`` moves an existing store to ``<name>.prev`` first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            os.replace(self.path, self.path.with_name(self.path.name + ".prev"))
        self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair(self) -> None:
        """Cut a torn last line (no newline) so that appends start on a fresh line."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (single write of the whole line, then fsync)."""
        if self._fd is None:
            raise RuntimeError("store not open")
        # JSON has no NaN/inf: stored as null (a recomputed objective is never NaN)
        line = dumps(record, finite=True, separators=(",", ":")) + "\n"
        data = line.encode()
        written = os.write(self._fd, data)
        while written < len(data):  # regular files take it in one go; be safe anyway
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_table(records: list[dict[str, Any]], out_dir: str | os.PathLike[str], stem: str = "results") -> list[Path]:
    """Write ``<stem>.parquet`` and ``<stem>.csv`` (atomically: :func:`moebench.json_io.write_atomically`).

    Returns
    -------
    list of Path
        The files written.
    """
    df = table_frame(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pq, csv = out / f"{stem}.parquet", out / f"{stem}.csv"
    write_atomically(pq, df.to_parquet(index=False))
    write_atomically(csv, df.drop(columns=[c for c in CSV_DROP if c in df.columns]).to_csv(index=False))
    return [pq, csv]


def read_table(path: str | os.PathLike[str]) -> Any:
    """Read a results table, typed by the row schema (:func:`moebench.schema.rows.conform`):
    a folder (``results.parquet``, else ``results.csv``, else the store ``results.jsonl``), a
    ``.parquet``, a ``.csv`` or a ``.jsonl`` file.

    Raises
    ------
    InputError
        When nothing readable is found.
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        for name in ("results.parquet", "results.csv", "results.jsonl"):
            if (p / name).exists():
                return read_table(p / name)
        raise InputError("no results.parquet, results.csv or results.jsonl in this folder", file=str(p))
    if not p.exists():
        raise InputError("no such file", file=str(p))
    try:
        if p.suffix == ".parquet":
            return conform(pd.read_parquet(p))
        if p.suffix == ".csv":
            return conform(pd.read_csv(p))
        if p.suffix == ".jsonl":
            return conform(table_frame(ResultStore(p).records()))
    except Exception as exc:
        raise InputError(f"cannot read the results table: {exc}", file=str(p)) from None
    raise InputError("expected a results folder, .parquet, .csv or .jsonl", file=str(p))
