"""numpy -> JSON: the one conversion of numpy scalars, arrays and tuples into plain JSON values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(obj: Any, *, finite: bool = False) -> Any:
    """``obj`` with numpy scalars and arrays, tuples and mappings turned into plain JSON values.

    Parameters
    ----------
    obj
        Any nesting of mappings, sequences, numpy values and plain values.
    finite
        Replace NaN and infinite floats by None (JSON has no such numbers).
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, finite=finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, finite=finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), finite=finite)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if finite and isinstance(obj, float) and not math.isfinite(obj):
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
