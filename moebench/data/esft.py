"""The DeepSeek-V2-Lite routing traces of deepseek-ai/ESFT: file format, reader, derived counts.

Upstream layout (https://github.com/deepseek-ai/ESFT at :data:`ESFT_SOURCE` ``commit``):
``results/expert_scores/<task>/expert_weights_<L>.txt`` for the tasks :data:`ESFT_TASKS` and
the MoE layers L = 1..26 (HF decoder-layer numbers; layer 0 is dense), plus a
``summary.json`` per task. In the data folder the same files live under
``deepseek-v2-lite-esft/expert_scores/`` gzip-compressed (``.txt.gz``); the reader takes
either form.

Each line of a layer file is one sequence: ``ids<TAB>...<TAB><TAB>w<TAB>...``, the flattened
``tokens x 6`` routed-expert ids in token order, then the 6 gate weights of every token. Line i
of every layer file is the same sequence, so :class:`EsftSource` returns real token paths
(:class:`moebench.data.source.TokenPaths`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from moebench.data import require_files
from moebench.data.counts_format import counts_from_paths
from moebench.data.source import TokenPaths, check_routing
from moebench.errors import InputError

#: Folder of the ESFT traces inside a data folder.
ESFT_DIR = "deepseek-v2-lite-esft/expert_scores"
ESFT_TASKS = ("intent", "law", "summary", "translation")
ESFT_LAYERS = 26
ESFT_EXPERTS = 64
ESFT_K = 6
#: The derived per-layer expert, gate-weight and pair counts (:func:`derived_counts_json`).
ESFT_COUNTS_JSON = "derived/deepseek-v2-lite-esft_expert_and_pair_counts.json"

ESFT_SOURCE: dict[str, str] = {
    "repo": "https://github.com/deepseek-ai/ESFT",
    "commit": "579a7711e4b332b4c57b47e378a0cf240d85caa6",
    "license": "MIT (LICENSE-CODE)",
    "source_paths": "results/expert_scores/<task>/expert_weights_<1..26>.txt",
    "model": "deepseek-ai/ESFT-vanilla-lite (DeepSeek-V2-Lite architecture)",
}

_COUNTS_HEADER: dict[str, str] = {
    "_description": (
        "Derived from deepseek-ai/ESFT results/expert_scores/<task>/expert_weights_<layer>.txt (copied under "
        "deepseek-v2-lite-esft/expert_scores). For each task and each MoE layer (file index 1..26 = HF decoder "
        "layer index 1..26; layer 0 is dense): expert_counts[l][e] = number of tokens whose top-6 routed set "
        "contains expert e; gate_weight_sums[l][e] = sum of the (un-normalised, norm_topk_prob=false) gate weights "
        "of expert e; pair_counts[l][i][j] (i!=j, symmetric) = number of tokens whose top-6 set contains both i "
        "and j (diagonal = expert_counts). Shared experts (2, always active) are not in the traces."
    ),
    "source_repo": "https://github.com/deepseek-ai/ESFT",
    "source_commit": ESFT_SOURCE["commit"],
    "license": "MIT (repository LICENSE-CODE)",
    "model": (
        "deepseek-ai/ESFT-vanilla-lite (DeepSeek-V2-Lite architecture: 26 MoE layers, 64 routed + 2 shared "
        "experts, top-6)"
    ),
}


def check_task(task: str) -> None:
    """Raise :class:`InputError` (``where="task"``) unless ``task`` is one of :data:`ESFT_TASKS`."""
    if task not in ESFT_TASKS:
        raise InputError(f"unknown ESFT task {task!r} (known: {', '.join(ESFT_TASKS)})", where="task")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in ``.gz``.

    Raises
    ------
    InputError
        When a ``.gz`` file is not valid gzip.
    """
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise InputError(f"not a valid gzip file ({exc})", file=str(path)) from None


def parse_layer(raw: bytes, path: str, weights: bool = False) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Parse one layer file: per sequence the (tokens, 6) ids and, if asked, the gate weights.

    Raises
    ------
    InputError
        Naming the file and line: ids that are not integers, not in groups of 6, out of
        [0, 64) or repeated within a token; weights that do not match the ids.
    """
    seqs: list[np.ndarray] = []
    ws: list[np.ndarray] | None = [] if weights else None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InputError("not an ESFT layer file (non-ASCII bytes)", file=path) from None
    for i, line in enumerate(text.splitlines()):
        if not line:
            continue
        left, _, right = line.partition("\t\t")
        try:
            ids = np.array(left.split("\t"), dtype=np.int64)
        except ValueError:
            raise InputError("expert ids are not integers", file=path, where=f"line {i + 1}") from None
        if ids.size % ESFT_K:
            raise InputError(f"expected groups of {ESFT_K} ids", file=path, where=f"line {i + 1}")
        tok = ids.reshape(-1, ESFT_K)
        bad = check_routing(tok, ESFT_EXPERTS)
        if bad:
            raise InputError(bad, file=path, where=f"line {i + 1}")
        seqs.append(tok)
        if ws is not None:
            try:
                w = np.array(right.split("\t"), dtype=np.float64)
            except ValueError:
                raise InputError("gate weights are not numbers", file=path, where=f"line {i + 1}") from None
            if w.size != ids.size or not np.all(np.isfinite(w)):
                raise InputError("expected one finite gate weight per id", file=path, where=f"line {i + 1}")
            ws.append(w.reshape(-1, ESFT_K))
    return seqs, ws


def read_task(scores_dir: Path, task: str, weights: bool = False) -> tuple[TokenPaths, list[bytes]]:
    """Read the 26 layer files of ``task`` from an ``expert_scores`` folder (upstream or data folder).

    Returns
    -------
    paths : TokenPaths
        The task's token paths; ``sha256`` is the SHA-256 over the uncompressed bytes of the 26
        layer files in layer order; ``weights`` only when asked.
    raw : list of bytes
        The uncompressed content of each layer file.

    Raises
    ------
    InputError
        When a file is missing or malformed, or the sequences do not line up across layers.
    """
    check_task(task)
    names = [f"{task}/expert_weights_{layer}.txt" for layer in range(1, ESFT_LAYERS + 1)]
    # each layer file gzip-compressed (a data folder) or as it is (upstream)
    files = [next((c for c in (scores_dir / f"{n}.gz", scores_dir / n) if c.is_file()), None) for n in names]
    missing = [f"{n}.gz" for n, f in zip(names, files) if f is None]
    require_files(scores_dir, missing, f"deepseek-v2-lite-esft task {task}")
    digest = hashlib.sha256()
    ids, ws, raws, lengths = [], [], [], None
    for f in files:
        assert f is not None
        raw = read_bytes(f)
        seqs, w = parse_layer(raw, str(f), weights)
        digest.update(raw)
        raws.append(raw)
        lens = [len(s) for s in seqs]
        if lengths is None:
            lengths = lens
        elif lens != lengths:
            raise InputError("sequences do not line up with layer 1 (line i must be the same sequence)", file=str(f))
        ids.append(np.concatenate(seqs))
        if w is not None:
            ws.append(np.concatenate(w))
    assert lengths is not None
    paths = TokenPaths(
        task=task,
        ids=np.stack(ids).astype(np.int8),
        seq=np.repeat(np.arange(len(lengths)), lengths),
        n_seq=len(lengths),
        n_experts=ESFT_EXPERTS,
        layers=tuple(range(1, ESFT_LAYERS + 1)),
        sha256=digest.hexdigest(),
        weights=np.stack(ws) if weights else None,
    )
    return paths, raws


@lru_cache(maxsize=8)
def _cached_task(root: str, task: str) -> TokenPaths:
    return read_task(Path(root) / ESFT_DIR, task)[0]


class EsftSource:
    """The ESFT traces of a data folder as a :class:`~moebench.data.source.TraceSource`.

    Parameters
    ----------
    root
        The data folder (the one holding ``deepseek-v2-lite-esft/``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def load(self, task: str) -> TokenPaths:
        """Token paths of ``task`` without gate weights (cached per folder and task)."""
        return _cached_task(str(self.root), task)


def derived_counts(tasks: dict[str, TokenPaths]) -> dict[str, Any]:
    """Per task and layer: expert counts, gate-weight sums (4 decimals) and pair counts.

    ``tasks`` must carry gate weights. The result serialized by :func:`dump_json` is the
    shipped ``derived/deepseek-v2-lite-esft_expert_and_pair_counts.json``.
    """
    out: dict[str, Any] = {**_COUNTS_HEADER, "tasks": {}}
    for name, p in tasks.items():
        if p.weights is None:
            raise ValueError("derived_counts needs gate weights")
        gw = [np.bincount(ids.ravel(), weights=w.ravel(), minlength=p.n_experts) for ids, w in zip(p.ids, p.weights)]
        counts = counts_from_paths(p)
        out["tasks"][name] = {
            "num_sequences": p.n_seq,
            "num_tokens": p.T,
            "layers": list(p.layers),
            "expert_counts": counts["expert_counts"],
            "gate_weight_sums": [[round(float(v), 4) for v in sums] for sums in gw],
            "pair_counts": counts["pair_counts"],
        }
    return out


def dump_json(obj: Any) -> bytes:
    """Compact JSON (no spaces, no final newline) as the derived files are stored."""
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")
