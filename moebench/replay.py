"""Replay of real token streams through a placement: per-token and per-sequence latency (issue 16).

An instance built from a real trace (the ``deepseek-v2-lite-esft`` and ``trace`` families)
collapses its tokens into per-layer activation-set distributions, and the evaluator reports
their mean. The trace itself keeps every token's path through all MoE layers, so the latency
each token pays under a placement is known:

    lat(t) = sum over the instance's layers l of max over the K experts e of token t at l of tau_l[e]

with tau the effective latency of :func:`moebench.evaluate.effective_latency`. A sequence's
latency is the sum over its tokens. :class:`Replayer` computes these for one instance on any
task of the same model, on all its tokens or on the train or test part of the instance's own
split (the same fraction and seed, applied to that task's sequences), and :class:`Replay`
holds the arrays and their statistics.

Which data is read
    An ESFT instance reads the ESFT traces of a data folder (``data_dir``, else
    ``$MOEBENCH_DATA``, else the shipped one); a ``trace`` instance records only its file's name
    and SHA-256, so the file is given (``trace``). A trace file may also serve other tasks of the
    same model to either kind of instance. The instance's **own task** is accepted only from the
    data it was built from (the SHA-256 of the task's token paths recorded in
    ``meta.provenance.data_sha256``); other tasks only when their model structure matches (the
    instance's K, experts per layer and recorded layer numbers).

Agreement with the evaluator
    Replaying exactly the instance's token set (``Replay.instance_tokens``: the instance's task,
    and a token set whose SHA-256 is ``meta.provenance.token_index_sha256``) gives a mean equal to
    :func:`moebench.evaluate.latency` up to summation order (tests assert 1e-9 relative).

Cost
    Token paths are read once per data folder (or file) and task (the readers cache them); a
    :class:`Replayer` keeps each selected token stream as (L, K, T) expert ids, and one replay is
    one gather, a maximum over K contiguous rows and a sum per layer (about 1 ms for 8,300
    tokens through 26 layers; ``benchmarks/replay_speed.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moebench.data import resolve_data_dir
from moebench.data.esft import EsftSource
from moebench.data.source import TokenPaths, TraceSource, split_sequences, token_index_sha256
from moebench.data.trace_format import TraceFileSource
from moebench.errors import InputError
from moebench.evaluate import as_placement, effective_latency, violations
from moebench.instance import Instance

#: Token sets a replay can use: every token of the task, or one part of the instance's split.
TOKEN_SETS = ("all", "train", "test")
#: Percentiles reported for tokens and sequences (numpy's default linear interpolation).
PERCENTILES = (50, 90, 95, 99)
#: Families whose instances record a real trace, and the provenance key of their layer numbers.
TRACE_FAMILIES = {"deepseek-v2-lite-esft": "hf_decoder_layers", "trace": "recorded_layers"}


def _short(h: str) -> str:
    return h[:12] + "…"


# ---- what an instance says about its trace -------------------------------------------------------
def _meta_value(meta: dict[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    """``meta`` at a dotted path, checked to be of ``kind`` (booleans are never numbers)."""
    value: Any = meta
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise InputError("missing: replay needs the provenance a trace family records", where=f"meta.{path}")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"expected {getattr(kind, '__name__', 'a number')}, got {value!r:.40}", where=f"meta.{path}")
    return value


def _int_list(meta: dict[str, Any], path: str) -> tuple[int, ...]:
    values = _meta_value(meta, path, list)
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
        raise InputError("expected a list of integers >= 0", where=f"meta.{path}")
    return tuple(values)


@dataclass(frozen=True)
class TraceOrigin:
    """What an instance records about the real trace it was built from (``meta.provenance``).

    Attributes
    ----------
    family : str
        ``deepseek-v2-lite-esft`` or ``trace``.
    task : str
        The task whose tokens form the instance.
    layers : tuple of int
        The model's layer number of each of the instance's layers.
    split : float
        Train fraction of the sequence split.
    seed : int
        Seed of the split (and of a token sample).
    which : str
        The part whose tokens form the instance (``train`` or ``test``).
    data_sha256 : str
        SHA-256 of the task's token paths as read (all layer files of an ESFT task; the whole
        trace file of a ``trace`` instance).
    token_index_sha256 : str
        SHA-256 of the instance's token indices (int64 bytes).
    train_sequences, test_sequences : tuple of int
        The recorded split of the task.
    file_name, file_sha256 : str or None
        The trace file (``trace`` instances only).
    """

    family: str
    task: str
    layers: tuple[int, ...]
    split: float
    seed: int
    which: str
    data_sha256: str
    token_index_sha256: str
    train_sequences: tuple[int, ...]
    test_sequences: tuple[int, ...]
    file_name: str | None = None
    file_sha256: str | None = None

    @classmethod
    def of(cls, inst: Instance) -> TraceOrigin:
        """Read the origin from an instance's metadata.

        Raises
        ------
        InputError
            At ``meta...`` when the instance was not built from a real trace or its provenance
            is missing or malformed.
        """
        meta = dict(inst.meta)
        family = meta.get("family")
        if family not in TRACE_FAMILIES:
            raise InputError(
                f"replay needs an instance built from a real trace (families {', '.join(TRACE_FAMILIES)}), "
                f"this one is from {family!r}",
                where="meta.family",
            )
        split = float(_meta_value(meta, "provenance.split", (int, float)))
        if not 0 < split <= 1:
            raise InputError(f"must be in (0, 1], got {split}", where="meta.provenance.split")
        which = _meta_value(meta, "provenance.which", str)
        if which not in ("train", "test"):
            raise InputError(f"must be train or test, got {which!r}", where="meta.provenance.which")
        seed = _meta_value(meta, "seed", int)
        layers = _int_list(meta, f"provenance.{TRACE_FAMILIES[family]}")
        if len(layers) != inst.L:
            raise InputError(
                f"names {len(layers)} layers, the instance has {inst.L}",
                where=f"meta.provenance.{TRACE_FAMILIES[family]}",
            )
        train = _int_list(meta, "provenance.train_sequences")
        test = _int_list(meta, "provenance.test_sequences")
        parts = split_sequences(len(train) + len(test), split, seed)
        if (tuple(parts.train.tolist()), tuple(parts.test.tolist())) != (train, test):
            raise InputError(
                f"the recorded train/test sequences are not the split split={split:g} seed={seed} gives",
                where="meta.provenance.train_sequences",
            )
        is_file = family == "trace"
        return cls(
            family=family,
            task=_meta_value(meta, "provenance.task", str),
            layers=layers,
            split=split,
            seed=seed,
            which=which,
            data_sha256=_meta_value(meta, "provenance.data_sha256", str),
            token_index_sha256=_meta_value(meta, "provenance.token_index_sha256", str),
            train_sequences=train,
            test_sequences=test,
            file_name=_meta_value(meta, "provenance.file_name", str) if is_file else None,
            file_sha256=_meta_value(meta, "provenance.file_sha256", str) if is_file else None,
        )


# ---- statistics and results ------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    """Summary of a latency sample (ms).

    Attributes
    ----------
    count : int
        Number of values.
    mean, min, max : float
        Mean, smallest and largest value.
    percentiles : dict
        ``{50: p50, 90: p90, 95: p95, 99: p99}`` (:data:`PERCENTILES`), numpy's linear
        interpolation between order statistics.
    """

    count: int
    mean: float
    min: float
    max: float
    percentiles: dict[int, float]

    @classmethod
    def of(cls, values: np.ndarray) -> LatencyStats:
        """Statistics of a non-empty array."""
        v = np.asarray(values, dtype=np.float64)
        pct = np.percentile(v, PERCENTILES)
        return cls(
            count=int(v.size),
            mean=float(v.mean()),
            min=float(v.min()),
            max=float(v.max()),
            percentiles={p: float(q) for p, q in zip(PERCENTILES, pct)},
        )

    def to_dict(self) -> dict[str, float]:
        """``mean, p50, p90, p95, p99, max, min`` (the count is reported by the caller)."""
        return {
            "mean": self.mean,
            **{f"p{p}": q for p, q in self.percentiles.items()},
            "max": self.max,
            "min": self.min,
        }


@dataclass(frozen=True)
class TokenStream:
    """The tokens of one task chosen for replay, laid out for the replay kernel.

    Attributes
    ----------
    task : str
        Task name.
    token_set : str
        ``all``, ``train`` or ``test``.
    sequences : ndarray
        The task's sequence indices replayed (sorted; whole sequences only).
    token_index : ndarray
        Indices of the replayed tokens in the task (sorted).
    seq_start : ndarray
        Position in the stream where each replayed sequence starts.
    ids : ndarray, shape (L, K, T)
        Local expert ids of the replayed tokens in the instance's L layers, the K ids of a
        token in one column (so the maximum over K runs over contiguous rows).
    data_sha256 : str
        Fingerprint of the data the paths were read from.
    instance_tokens : bool
        True when these are exactly the instance's tokens (its task, and the SHA-256 of the
        token indices it records).
    """

    task: str
    token_set: str
    sequences: np.ndarray
    token_index: np.ndarray
    seq_start: np.ndarray
    ids: np.ndarray
    data_sha256: str
    instance_tokens: bool

    def token_latency(self, tau: np.ndarray, expert_offset: np.ndarray) -> np.ndarray:
        """Per-token latency for effective latencies ``tau`` (shape (G,)): shape (T,)."""
        out = np.zeros(self.ids.shape[2])
        for layer, ids in enumerate(self.ids):
            lo = expert_offset[layer]
            # np.take with the small-int ids casts in chunks: no (K, T) intp copy per call
            out += np.take(tau[lo:], ids).max(axis=0)
        return out


@dataclass(frozen=True)
class Replay:
    """A placement replayed on real tokens.

    Attributes
    ----------
    instance, instance_hash : str
        The instance's name and content hash.
    task : str
        The replayed task.
    instance_task : str
        The instance's task.
    token_set : str
        ``all``, ``train`` or ``test``.
    split, seed : float, int
        The split the ``train``/``test`` parts come from.
    source : dict
        ``kind`` (``esft`` or ``trace-file``), ``name`` (the data folder's ESFT task or the
        file's name) and ``data_sha256`` of the replayed task.
    instance_tokens : bool
        The replayed tokens are exactly the instance's: ``per_token.mean`` is then the
        evaluator's latency.
    sequences : ndarray
        The task's sequence indices replayed.
    token_latency, sequence_latency : ndarray
        ms per token (in stream order) and per sequence (the sum over its tokens).
    per_token, per_sequence : LatencyStats
        Their statistics.
    empty_mean : float
        Mean per-token latency with nothing cached.
    violations : list of str
        Capacity violations of the placement (empty when feasible).
    """

    instance: str
    instance_hash: str
    task: str
    instance_task: str
    token_set: str
    split: float
    seed: int
    source: dict[str, str]
    instance_tokens: bool
    sequences: np.ndarray
    token_latency: np.ndarray
    sequence_latency: np.ndarray
    per_token: LatencyStats
    per_sequence: LatencyStats
    empty_mean: float
    violations: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        """True when the placement fits every server."""
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``moebench replay`` prints (statistics only, not the arrays)."""
        return {
            "instance": self.instance,
            "instance_hash": self.instance_hash,
            "task": self.task,
            "instance_task": self.instance_task,
            "token_set": self.token_set,
            "split": self.split,
            "seed": self.seed,
            "source": dict(self.source),
            "instance_tokens": self.instance_tokens,
            "tokens": self.per_token.count,
            "sequences": self.per_sequence.count,
            **self.per_token.to_dict(),
            "per_sequence": self.per_sequence.to_dict(),
            "empty_mean": self.empty_mean,
            "feasible": self.feasible,
            "violations": list(self.violations),
        }


# ---- the replayer ---------------------------------------------------------------------------------
class Replayer:
    """Replays placements of one instance on the real tokens of its trace (or of another task).

    Parameters
    ----------
    inst
        An instance of a real-trace family (:class:`TraceOrigin`).
    data_dir
        Data folder of the ESFT traces (ESFT instances; default ``$MOEBENCH_DATA``, else the
        shipped folder). Not with ``trace``.
    trace
        A ``moebench-trace/1`` file: required for a ``trace`` instance (its own file, checked by
        SHA-256, for its own task); for either kind, another recording of the same model serves
        other tasks.

    Raises
    ------
    InputError
        When the instance is not from a real trace, or the data cannot be found.

    Notes
    -----
    Streams are cached per (task, token set); the token paths behind them are cached by the
    readers per folder or file, so replayers of many instances of one trace share them.
    """

    def __init__(
        self,
        inst: Instance,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        trace: str | os.PathLike[str] | None = None,
    ) -> None:
        if data_dir is not None and trace is not None:
            raise InputError("give a data folder or a trace file, not both", where="trace")
        self.inst = inst
        self.origin = TraceOrigin.of(inst)
        self.source: TraceSource
        if trace is not None:
            self.source = TraceFileSource(trace)
            self.source_kind = "trace-file"
            self.source_name = os.path.basename(os.fspath(trace))
            self.location = os.fspath(trace)
        elif self.origin.family == "trace":
            raise InputError(
                f"the instance records only its trace file's name ({self.origin.file_name}) and SHA-256 "
                f"({_short(self.origin.file_sha256 or '')}): give the file",
                where="trace",
            )
        else:
            root = resolve_data_dir(data_dir)
            self.source = EsftSource(root)
            self.source_kind = "esft"
            self.source_name = "deepseek-v2-lite-esft"
            self.location = str(root)
        self._streams: dict[tuple[str, str], TokenStream] = {}
        self._empty: dict[tuple[str, str], float] = {}

    def paths(self, task: str) -> TokenPaths:
        """The token paths of ``task``, checked against the instance.

        Raises
        ------
        InputError
            When the task is unknown, its structure (K, experts, layer numbers) is not the
            instance's, or it is the instance's task read from other data than the instance's.
        """
        inst, origin = self.inst, self.origin
        paths = self.source.load(task)
        nl = inst.L
        at = {"file": self.location, "where": f"task {task}"}
        if paths.K != inst.K:
            raise InputError(f"K={paths.K}, but the instance has K={inst.K}: not the same model", **at)
        if np.any(inst.n_experts != paths.n_experts):
            raise InputError(
                f"{paths.n_experts} experts per layer, but the instance has "
                f"{sorted({int(e) for e in inst.n_experts})}: not the same model",
                **at,
            )
        if tuple(paths.layers[:nl]) != origin.layers:
            raise InputError(
                f"recorded layers {list(paths.layers)} do not start with the instance's {list(origin.layers)}: "
                "not the same model",
                **at,
            )
        if task == origin.task and paths.sha256 != origin.data_sha256:
            raise InputError(
                f"the token paths read ({_short(paths.sha256)}) are not the data the instance was built from "
                f"({_short(origin.data_sha256)}); its own task must be replayed from that data",
                **at,
            )
        return paths

    def sequences(self, paths: TokenPaths, token_set: str) -> np.ndarray:
        """The sequences of ``paths`` in ``token_set``: all, or a part of the instance's split.

        The split is :func:`moebench.data.source.split_sequences` with the instance's fraction and
        seed (on the instance's own task: the recorded sequence lists, checked by
        :meth:`TraceOrigin.of`).
        """
        if token_set not in TOKEN_SETS:
            raise InputError(f"must be one of {', '.join(TOKEN_SETS)}, got {token_set!r}", where="tokens")
        if token_set == "all":
            return np.arange(paths.n_seq)
        origin = self.origin
        parts = split_sequences(paths.n_seq, origin.split, origin.seed)
        if paths.task == origin.task and paths.n_seq != len(origin.train_sequences) + len(origin.test_sequences):
            raise InputError(
                f"{paths.n_seq} sequences, but the instance recorded "
                f"{len(origin.train_sequences) + len(origin.test_sequences)}",
                file=self.location,
                where=f"task {paths.task}",
            )
        chosen = parts.part(token_set)
        if chosen.size == 0:
            raise InputError(
                f"split={origin.split:g} leaves no {token_set} sequence of the {paths.n_seq} of task {paths.task}",
                where="tokens",
            )
        return chosen

    def stream(self, task: str | None = None, token_set: str = "all") -> TokenStream:
        """The replayed tokens of ``task`` (default: the instance's) in ``token_set`` (cached)."""
        task = self.origin.task if task is None else task
        key = (task, token_set)
        if key not in self._streams:
            paths = self.paths(task)
            seqs = self.sequences(paths, token_set)
            idx = paths.tokens_of(seqs)
            offsets = paths.offsets
            starts = np.cumsum(np.r_[0, offsets[seqs + 1] - offsets[seqs]])[:-1]
            ids = np.ascontiguousarray(paths.ids[: self.inst.L, idx].transpose(0, 2, 1))
            ids.setflags(write=False)
            self._streams[key] = TokenStream(
                task=task,
                token_set=token_set,
                sequences=seqs,
                token_index=idx,
                seq_start=starts,
                ids=ids,
                data_sha256=paths.sha256,
                instance_tokens=task == self.origin.task and token_index_sha256(idx) == self.origin.token_index_sha256,
            )
        return self._streams[key]

    def replay(self, x: np.ndarray, task: str | None = None, token_set: str = "all") -> Replay:
        """Replay placement ``x`` (boolean (N, G)) on ``task``'s tokens in ``token_set``.

        Parameters
        ----------
        x
            The placement.
        task
            Task to replay (default: the instance's).
        token_set
            ``all`` tokens of the task, or the ``train`` or ``test`` part of the instance's
            split applied to the task.

        Returns
        -------
        Replay
        """
        inst = self.inst
        x = as_placement(inst, x)
        s = self.stream(task, token_set)
        lat = s.token_latency(effective_latency(inst, x), inst.expert_offset)
        key = (s.task, token_set)
        if key not in self._empty:
            self._empty[key] = float(s.token_latency(inst.fallback, inst.expert_offset).mean())
        per_seq = np.add.reduceat(lat, s.seq_start)
        return Replay(
            instance=inst.name,
            instance_hash=inst.content_hash,
            task=s.task,
            instance_task=self.origin.task,
            token_set=token_set,
            split=self.origin.split,
            seed=self.origin.seed,
            source={"kind": self.source_kind, "name": self.source_name, "data_sha256": s.data_sha256},
            instance_tokens=s.instance_tokens,
            sequences=s.sequences,
            token_latency=lat,
            sequence_latency=per_seq,
            per_token=LatencyStats.of(lat),
            per_sequence=LatencyStats.of(per_seq),
            empty_mean=self._empty[key],
            violations=violations(inst, x),
        )


def replay(
    inst: Instance,
    x: np.ndarray,
    task: str | None = None,
    token_set: str = "all",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    trace: str | os.PathLike[str] | None = None,
) -> Replay:
    """Replay one placement once (:meth:`Replayer.replay`; keep a :class:`Replayer` for many)."""
    return Replayer(inst, data_dir=data_dir, trace=trace).replay(x, task, token_set)
