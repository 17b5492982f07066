"""numpy -> JSON: the one conversion of numpy scalars, arrays and tuples into plain JSON values.

Also the one spelling of a JSON path in messages (:func:`join_path`) and the strict output of
the command line (:func:`dumps_strict`: no ``NaN``/``Infinity`` anywhere, and where they were).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def join_path(where: str, key: Any) -> str:
    """``where.key``, or ``where["odd key"]`` when the key is not a plain identifier (one line)."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    if isinstance(key, str) and _SIMPLE_KEY.fullmatch(key) and len(key) <= 60:
        return f"{where}.{key}" if where else key
    text = json.dumps(str(key))
    if len(text) > 42:
        text = text[:40] + '…"'
    return f"{where}[{text}]"


def jsonable(obj: Any, *, finite: bool = False, replaced: list[str] | None = None, path: str = "") -> Any:
    """``obj`` with numpy scalars and arrays, tuples and mappings turned into plain JSON values.

    Parameters
    ----------
    obj
        Any nesting of mappings, sequences, numpy values and plain values.
    finite
        Replace NaN and infinite floats by None (JSON has no such numbers).
    replaced
        When given (with ``finite``), the JSON path of every replaced value is appended to it.
    path
        JSON path of ``obj`` itself (for ``replaced``).
    """
    if isinstance(obj, Mapping):
        return {
            str(k): jsonable(v, finite=finite, replaced=replaced, path=join_path(path, str(k))) for k, v in obj.items()
        }
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, finite=finite, replaced=replaced, path=join_path(path, i)) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if finite and isinstance(obj, float) and not math.isfinite(obj):
        if replaced is not None:
            replaced.append(path or "$")
        return None
    return obj


def json_default(o: Any) -> Any:
    """``default=`` hook of :func:`json.dumps`: numpy values as plain ones, anything else as text."""
    if isinstance(o, (np.generic, np.ndarray)):
        return jsonable(o)
    return str(o)


def dumps(obj: Any, *, finite: bool = False, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`jsonable` ``obj`` (``finite``: NaN and infinities as null,
    and an error for any that remain)."""
    return json.dumps(jsonable(obj, finite=finite), default=json_default, allow_nan=not finite, **kwargs)


def dumps_strict(obj: Any, **kwargs: Any) -> tuple[str, list[str]]:
    """Strict JSON text of ``obj`` (non-finite floats as ``null``) and the JSON paths replaced."""
    replaced: list[str] = []
    clean = jsonable(obj, finite=True, replaced=replaced)
    return json.dumps(clean, default=json_default, allow_nan=False, **kwargs), replaced
