"""The data folder's manifest (``MANIFEST.tsv``), its check, and moebench's gzip writer.

``MANIFEST.tsv`` is a tab-separated table with the header :data:`COLUMNS`, one row per file:

``local_path``
    Path in the data folder, or ``-`` for an upstream file that is read but not stored (the
    OLMoE pickles: their numbers are in ``derived/olmoe_repo_expert_counts.json``).
``source_repo``, ``source_commit``, ``source_path``
    Where the file comes from (``moebench`` for the folder's own documentation).
``stored_as``
    ``gzip(original)`` (compressed by :func:`gzip_bytes`), ``verbatim``, ``derived`` (computed
    by ``moebench data import`` from the sources named), ``moebench`` or ``not stored``.
``size_bytes_original``, ``sha256_original``
    Size and SHA-256 of the original bytes: of the uncompressed content for ``gzip(original)``,
    of the file itself otherwise.

Hashing the uncompressed content makes the check independent of the compressor: GNU ``gzip -9
-n`` and zlib's deflate (the one Python uses) produce different bytes for 1 of the 104 ESFT
files. moebench's own writer (:func:`gzip_bytes`) is deterministic for a given zlib; the shipped
``.gz`` files are its output.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import astuple, dataclass, field
from pathlib import Path

from moebench.errors import InputError

MANIFEST = "MANIFEST.tsv"
COLUMNS = (
    "local_path",
    "source_repo",
    "source_commit",
    "source_path",
    "stored_as",
    "size_bytes_original",
    "sha256_original",
)
GZIP = "gzip(original)"
NOT_STORED = "not stored"

# gzip member header: magic, deflate, no flags, mtime 0, XFL 2 (best compression), OS 3 (Unix),
# exactly what GNU `gzip -9 -n` writes; fixed so the output does not depend on the platform
_GZIP_HEADER = bytes.fromhex("1f8b0800000000000203")
_CHUNK = 1 << 20


def gzip_bytes(raw: bytes) -> bytes:
    """Deterministic gzip of ``raw``: the header above, zlib deflate level 9 with memLevel 9.

    With the zlib that CPython links (1.2.x/1.3.x) this equals GNU ``gzip -9 -n`` for 103 of
    the 104 ESFT layer files; a different deflate implementation (zlib-ng) may give other
    bytes for the same content, which is why the manifest hashes the uncompressed content.
    """
    comp = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    body = comp.compress(raw) + comp.flush()
    return _GZIP_HEADER + body + struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


@dataclass(frozen=True)
class ManifestRow:
    """One row of ``MANIFEST.tsv`` (see the module docstring)."""

    local_path: str
    source_repo: str
    source_commit: str
    source_path: str
    stored_as: str
    size: int
    sha256: str


def manifest_bytes(rows: list[ManifestRow]) -> bytes:
    """``MANIFEST.tsv`` content: header and rows, tab-separated, one final newline."""
    lines = ["\t".join(COLUMNS)] + ["\t".join(str(v) for v in astuple(r)) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def read_manifest(root: Path) -> list[ManifestRow]:
    """The rows of ``root/MANIFEST.tsv``.

    Raises
    ------
    InputError
        When the file is missing or a row is malformed (naming the line).
    """
    path = root / MANIFEST
    if not path.is_file():
        raise InputError(f"no {MANIFEST} in {root} (is it a moebench data folder?)", file=str(root))
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != COLUMNS:
        raise InputError(f"header must be {' '.join(COLUMNS)}", file=str(path), where="line 1")
    rows = []
    for i, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise InputError(f"expected {len(COLUMNS)} tab-separated cells", file=str(path), where=f"line {i}")
        try:
            size = int(cells[5])
        except ValueError:
            raise InputError("size_bytes_original is not an integer", file=str(path), where=f"line {i}") from None
        if len(cells[6]) != 64 or any(c not in "0123456789abcdef" for c in cells[6]):
            raise InputError("sha256_original is not 64 hex digits", file=str(path), where=f"line {i}")
        rows.append(ManifestRow(*cells[:5], size, cells[6]))
    return rows


def content_digest(path: Path, compressed: bool) -> tuple[int, str]:
    """(size, SHA-256) of a file's content, read in chunks (decompressed when ``compressed``)."""
    h, n = hashlib.sha256(), 0
    opener = gzip.open if compressed else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def row_for(local: str, data: bytes, source: tuple[str, str, str], stored_as: str) -> ManifestRow:
    """A manifest row for original content ``data`` stored at ``local``."""
    return ManifestRow(local, *source, stored_as, len(data), hashlib.sha256(data).hexdigest())


@dataclass
class Verification:
    """Result of :func:`verify`.

    Attributes
    ----------
    intact : list of str
        Files whose content matches the manifest.
    problems : list of str
        One line per missing, corrupt or changed file.
    unlisted : list of str
        Files in the folder that the manifest does not list (not an error).
    """

    intact: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)


def verify(root: Path) -> Verification:
    """Check every file the manifest of ``root`` lists against its size and SHA-256.

    Raises
    ------
    InputError
        When ``root`` is not a folder or its manifest is missing or malformed.
    """
    if not root.is_dir():
        raise InputError("not a folder", file=str(root))
    out = Verification()
    listed = {MANIFEST}
    for row in read_manifest(root):
        if row.local_path == "-":
            continue
        listed.add(row.local_path)
        path = root / row.local_path
        if not path.is_file():
            out.problems.append(f"{row.local_path}: missing")
            continue
        try:
            size, digest = content_digest(path, row.stored_as == GZIP)
        except (OSError, EOFError, zlib.error) as exc:
            out.problems.append(f"{row.local_path}: unreadable ({exc})")
            continue
        if (size, digest) != (row.size, row.sha256):
            out.problems.append(f"{row.local_path}: content differs (size {size}, sha256 {digest[:16]}...)")
        else:
            out.intact.append(row.local_path)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in listed and "__pycache__" not in rel:
            out.unlisted.append(rel)
    return out
