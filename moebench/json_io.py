"""Reading JSON input with bounded resources, and writing strict JSON output.

Every JSON file moebench reads from a user (instances, placements) goes through
:func:`read_json`, which guarantees, before any large allocation:

- only regular files are opened (a FIFO, a device such as ``/dev/zero``, a directory or a socket
  is refused after one ``stat``; the file is opened with ``O_NONBLOCK`` and checked again, so a
  FIFO swapped in after the check cannot block);
- the file and its decompressed content are at most :func:`max_input_bytes` bytes
  (``MOEBENCH_MAX_INPUT_MB``, default 256 MB); gzip is inflated as a stream that stops at the cap,
  so a gzip bomb costs at most the cap in memory;
- nesting is at most :data:`MAX_DEPTH` levels and the Python objects the parser would build fit
  in :func:`max_memory_bytes` (4 x the input cap), both measured by one vectorized pass over the
  bytes before parsing (no ``RecursionError`` however deep the input);
- duplicate keys, ``NaN``/``Infinity`` literals and integers too long to convert are errors, each
  naming the JSON path or the line.

Output goes through :func:`moebench.encoding.dumps_strict` (non-finite floats as ``null``, and
where), so that stdout is always strict JSON; files are written whole or not at all by
:func:`write_atomically`.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from moebench.encoding import join_path
from moebench.errors import InputError

#: Environment variable overriding the input size cap (in MB, decompressed).
MAX_INPUT_ENV = "MOEBENCH_MAX_INPUT_MB"
#: Default cap on the size of an input file and of its decompressed content, in MB.
DEFAULT_MAX_INPUT_MB = 256
#: Parsed documents and the arrays built from them may use this many times the input cap.
MEMORY_FACTOR = 4
#: Deepest nesting of lists and objects accepted (an instance file needs 6 levels).
MAX_DEPTH = 64
#: Python objects a parsed container / scalar costs at most, in bytes (list header plus
#: over-allocated slots; a float or a large int), for the pre-parse memory estimate.
CONTAINER_BYTES = 120
SCALAR_BYTES = 32

_MB = 1 << 20
_CHUNK = 1 << 22  # bytes per step of streaming and scanning: bounds the scan's temporaries
_GZIP_MAGIC = b"\x1f\x8b"
# byte classes of the structure scan: 1 opens a container, 2 closes one, 3 is a comma
_TOKEN = np.zeros(256, dtype=np.int8)
_TOKEN[[ord("["), ord("{")]] = 1
_TOKEN[[ord("]"), ord("}")]] = 2
_TOKEN[ord(",")] = 3
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def max_input_bytes() -> int:
    """The input size cap in bytes: ``$MOEBENCH_MAX_INPUT_MB`` MB, default 256 MB.

    Raises
    ------
    InputError
        When the variable is set to something other than a positive number.
    """
    raw = os.environ.get(MAX_INPUT_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MAX_INPUT_MB * _MB
    try:
        mb = float(raw)
    except ValueError:
        mb = math.nan
    if not (math.isfinite(mb) and mb > 0):
        raise InputError(f"expected a number of MB > 0, got {raw[:40]!r}", where=MAX_INPUT_ENV)
    return max(1, int(mb * _MB))


def max_memory_bytes() -> int:
    """Memory a parsed document, and the arrays built from it, may take: 4 x the input cap."""
    return MEMORY_FACTOR * max_input_bytes()


def _describe_mode(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "is a directory, expected a file"),
        (stat.S_ISFIFO, "is a FIFO (named pipe), expected a regular file"),
        (stat.S_ISCHR, "is a character device, expected a regular file"),
        (stat.S_ISBLK, "is a block device, expected a regular file"),
        (stat.S_ISSOCK, "is a socket, expected a regular file"),
    ):
        if test(mode):
            return what
    return "is not a regular file"


def format_mb(n: float) -> str:
    """Bytes as MB for messages: ``76,294 MB``, ``1.5 MB``, ``0.000381 MB``."""
    return f"{n / _MB:,.0f} MB" if n >= 10 * _MB else f"{n / _MB:.3g} MB"


def _too_big(what: str, limit: int) -> str:
    return f"{what} exceeds the input limit of {format_mb(limit)} (set {MAX_INPUT_ENV} to raise it)"


def read_input_bytes(path: str | os.PathLike[str]) -> bytes | bytearray:
    """The content of a regular file, gunzipped when it is gzip, within the input cap.

    Raises
    ------
    InputError
        Naming the file: missing, unreadable, not a regular file, too big, corrupt gzip.
    """
    name = os.fspath(path)
    limit = max_input_bytes()
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise InputError("file not found", file=name) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(_describe_mode(st.st_mode), file=name)
    if st.st_size > limit:
        raise InputError(_too_big(f"the file ({format_mb(st.st_size)})", limit), file=name)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=name) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced between stat and open
            raise InputError(_describe_mode(mode), file=name)
        raw = _read_capped(fd, limit, name)
    finally:
        os.close(fd)
    if raw[:2] == _GZIP_MAGIC:
        return _gunzip(raw, limit, name)
    if name.endswith(".gz"):
        raise InputError("file name ends in .gz but the content is not gzip", file=name)
    return raw


def _read_capped(fd: int, limit: int, name: str) -> bytes:
    parts, total = [], 0
    while True:
        try:
            block = os.read(fd, min(_CHUNK, limit + 1 - total))
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=name) from None
        if not block:
            return b"".join(parts)
        parts.append(block)
        total += len(block)
        if total > limit:  # the file grew after the stat
            raise InputError(_too_big("the file", limit), file=name)


def _gunzip(data: bytes, limit: int, name: str) -> bytearray:
    """Inflate every gzip member of ``data``, stopping as soon as the output passes ``limit``.

    Input is fed in slices and output drained in chunks, so neither side is ever copied whole;
    returns the buffer itself (the decompressed text may be as large as the cap).
    """
    out = bytearray()
    view = memoryview(data)
    pos = 0
    try:
        while pos < len(view):
            if view[pos : pos + 2] != _GZIP_MAGIC:
                raise InputError("corrupt gzip data: trailing garbage after the compressed stream", file=name)
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            while not d.eof:
                if pos >= len(view):
                    raise InputError("corrupt gzip data: the compressed stream is truncated", file=name)
                buf: bytes | memoryview = view[pos : pos + _CHUNK]
                pos += len(buf)
                while buf and not d.eof:
                    out += d.decompress(buf, _CHUNK)
                    if len(out) > limit:
                        raise InputError(_too_big("the decompressed content", limit), file=name)
                    buf = d.unconsumed_tail
            pos -= len(d.unused_data)  # the next member starts right after this one
    except zlib.error as exc:
        raise InputError(f"corrupt gzip data: {exc}", file=name) from None
    return out


# ---- the structure scan ------------------------------------------------------------------
def _line_col(text: bytes | bytearray | str, offset: int) -> str:
    nl = "\n" if isinstance(text, str) else b"\n"
    line = text.count(nl, 0, offset) + 1  # type: ignore[arg-type]
    col = offset - (text.rfind(nl, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return f"line {line} column {col}"


def _chunks(raw: bytes | bytearray) -> Iterator[tuple[int, np.ndarray]]:
    view = np.frombuffer(raw, dtype=np.uint8)
    for start in range(0, len(view), _CHUNK):
        yield start, view[start : start + _CHUNK]


def check_structure(
    raw: bytes | bytearray, name: str, *, max_depth: int = MAX_DEPTH, memory: int | None = None
) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` or too big once parsed, before parsing.

    One pass over the bytes, vectorized per chunk: a quote preceded by an even run of backslashes
    opens or closes a string; brackets and commas outside strings give the nesting depth and the
    number of containers and values, from which the parsed size is estimated (at most
    :data:`CONTAINER_BYTES` per container and :data:`SCALAR_BYTES` per value). On text that is not
    JSON the counts may be off, but never on the valid prefix the parser reads before it fails,
    so the parser cannot recurse deeper than ``max_depth``.

    Raises
    ------
    InputError
        Naming the line of the first level too deep, or the estimated memory.
    """
    memory = max_memory_bytes() if memory is None else memory
    depth, in_string, bs_run = 0, False, 0  # carried from chunk to chunk
    containers = values = 0
    for start, arr in _chunks(raw):
        n = len(arr)
        quotes = np.flatnonzero(arr == _QUOTE)
        is_bs = arr == _BACKSLASH
        if bs_run or is_bs.any():
            # length of the backslash run ending just before each quote
            last_other = np.maximum.accumulate(np.where(is_bs, -1, np.arange(n)))
            before = quotes - 1
            prev = np.where(before >= 0, last_other[np.maximum(before, 0)], -1)
            run = np.where(prev >= 0, before - prev, quotes + bs_run)
            quotes = quotes[run % 2 == 0]
            tail = n - 1 - int(last_other[-1])
            bs_run = bs_run + n if tail == n else tail
        tok = _TOKEN[arr]
        pos = np.flatnonzero(tok)
        outside = (np.searchsorted(quotes, pos) + in_string) % 2 == 0
        pos = pos[outside]
        kinds = tok[pos]
        steps = np.where(kinds == 1, 1, np.where(kinds == 2, -1, 0)).astype(np.int64)
        level = depth + np.cumsum(steps)
        if level.size and int(level.max()) > max_depth:
            first = int(pos[np.argmax(level > max_depth)]) + start
            raise InputError(f"nesting deeper than {max_depth} levels at {_line_col(raw, first)}", file=name)
        if level.size:
            depth = int(level[-1])
        in_string ^= bool(len(quotes) % 2)
        opened = int(np.count_nonzero(kinds == 1))
        containers += opened
        values += opened + int(np.count_nonzero(kinds == 3))
        estimate = containers * CONTAINER_BYTES + values * SCALAR_BYTES
        if estimate > memory:
            raise InputError(
                f"parsing would need about {format_mb(estimate)} or more ({containers:,} lists/objects by byte "
                f"{start + n:,}), more than the limit of {format_mb(memory)} ({MEMORY_FACTOR} x {MAX_INPUT_ENV})",
                file=name,
            )


# ---- parsing -----------------------------------------------------------------------------
class _DuplicateKey(dict):
    """An object in which a key occurred twice (marked during parsing, located afterwards)."""

    duplicate: str = ""


class _Constant(ValueError):
    pass


def _reject_constant(token: str) -> Any:
    # NaN, Infinity and -Infinity are not JSON; Python's parser would accept them silently.
    raise _Constant(token)


def _find(doc: Any, target: Any) -> str:
    """JSON path of the object ``target`` (by identity) inside ``doc``; iterative."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, where = stack.pop()
        if node is target:
            return where or "$"
        if isinstance(node, dict):
            stack.extend((v, join_path(where, k)) for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, join_path(where, i)) for i, v in enumerate(node) if isinstance(v, (dict, list)))
    return "$"  # pragma: no cover - the target is always inside doc


def decode_json_bytes(raw: bytes | bytearray, name: str) -> str:
    """:func:`check_structure`, then decode UTF-8: the text :func:`parse_json_text` may parse."""
    check_structure(raw, name)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=name) from None


def parse_json_text(text: str, name: str) -> Any:
    """Parse text checked by :func:`decode_json_bytes`; every defect is an :class:`InputError`."""
    duplicates: list[_DuplicateKey] = []

    def pairs(p: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(p)
        if len(obj) == len(p):
            return obj
        seen: set[str] = set()
        marked = _DuplicateKey(p)
        for key, _ in p:
            if key in seen:
                marked.duplicate = key
                break
            seen.add(key)
        duplicates.append(marked)
        return marked

    try:
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", file=name) from None
    except _Constant as exc:
        raise InputError(f"not valid JSON: {exc.args[0]} is not a JSON number", file=name) from None
    except ValueError:  # Python's limit on the digits of an integer string (4300 by default)
        limit = sys.get_int_max_str_digits() or 4300
        match = re.search(rf"\d{{{limit + 1}}}", text)
        at = f" at {_line_col(text, match.start())}" if match else ""
        raise InputError(f"an integer with more than {limit} digits{at} (too large for a float)", file=name) from None
    except RecursionError:  # pragma: no cover - check_structure bounds the depth first
        raise InputError(f"nesting deeper than {MAX_DEPTH} levels", file=name) from None
    if duplicates:
        dup = duplicates[0]  # the first object the parser completed with a repeated key
        where = join_path(_find(doc, dup).removeprefix("$"), dup.duplicate)
        raise InputError("duplicate key (each key may appear once per object)", file=name, where=where)
    return doc


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON or gzipped JSON file within the resource limits of this module.

    Raises
    ------
    InputError
        Naming the file (and the line or JSON path when there is one) and the reason.
    """
    name = os.fspath(path)
    raw = read_input_bytes(name)
    text = decode_json_bytes(raw, name)
    del raw  # the bytes are not needed while the parser builds the document
    return parse_json_text(text, name)


# ---- checks on parsed values ---------------------------------------------------------------
def check_json_numbers(doc: Any, where: str) -> None:
    """Every number inside ``doc`` (free-form data such as ``meta``) must be a finite float.

    Raises
    ------
    InputError
        At the path of the first float that overflowed (``1e999``) or integer that does not
        fit a float.
    """
    stack: list[tuple[Any, str]] = [(doc, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, join_path(path, k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, join_path(path, i)) for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputError("number too large for a float (it overflows to infinity)", where=path)
        elif isinstance(node, int) and not isinstance(node, bool) and not fits_float(node):
            raise InputError(f"integer with {len(str(abs(node)))} digits does not fit a float", where=path)


def fits_float(v: int) -> bool:
    """True when the integer ``v`` converts to a finite float."""
    try:
        float(v)
    except OverflowError:
        return False
    return True


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all: a temp file beside it (UTF-8 for text), fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
