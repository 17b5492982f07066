"""Token paths: the one abstraction every real routing trace is read into.

A real trace is a set of *tasks* (workloads: the ESFT tasks, a user's datasets). A task is a
list of *sequences* (prompts, documents), each a list of *tokens* in the order the model saw
them. For every token the trace gives, at every recorded MoE layer, the Top-K routed expert
ids (and optionally their gate weights). :class:`TokenPaths` holds one task:

``ids[l, t, :]``
    the K expert ids of token ``t`` at MoE layer ``l`` (``l`` indexes the recorded layers;
    ``layers[l]`` is the model's own layer number). Token ``t`` is the same token in every
    layer, so ``ids[:, t, :]`` is the token's path through the model.
``seq[t]``
    the sequence of token ``t``; tokens are stored sequence by sequence, each sequence in
    token order (``seq`` is non-decreasing and ``offsets`` gives the slices).

Everything that turns a trace into instances, and the replay of real token streams (issue 16),
works on :class:`TokenPaths` only, never on a file format:

- :func:`split_sequences` is *the* train/test split by sequence (``split`` = train fraction,
  seeded); an instance records its seed, ``split`` and both sequence lists in
  ``meta.provenance``, so the same split can be rebuilt on the same task or on another task.
- :func:`select_tokens` picks the tokens of an instance (all tokens of a split, or a seeded
  sample of them); the instance's activation sets are ``ids[:layers, idx]``.

Readers: :class:`moebench.data.esft.EsftSource` (the shipped ESFT traces) and
:class:`moebench.data.trace_format.TraceFileSource` (``moebench-trace/1`` files). Both
implement :class:`TraceSource`: ``load(task) -> TokenPaths``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from moebench.errors import InputError


@dataclass(frozen=True)
class TokenPaths:
    """Real routing of one task: every token's Top-K experts at every recorded MoE layer.

    Attributes
    ----------
    task : str
        Task (workload) name.
    ids : ndarray, shape (L, T, K)
        Expert ids in [0, n_experts); read-only.
    seq : ndarray, shape (T,)
        Sequence index of every token (non-decreasing); read-only.
    n_seq : int
        Number of sequences (every sequence has at least one token).
    n_experts : int
        Routed experts per MoE layer.
    layers : tuple of int
        The model's layer number of each of the L recorded layers.
    sha256 : str
        Fingerprint of the data the paths were read from (recorded in instance metadata).
    weights : ndarray, shape (L, T, K), or None
        Gate weights aligned with ``ids``, when the trace has them; read-only.
    """

    task: str
    ids: np.ndarray
    seq: np.ndarray
    n_seq: int
    n_experts: int
    layers: tuple[int, ...]
    sha256: str
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids, seq = self.ids, self.seq
        if ids.ndim != 3 or seq.shape != (ids.shape[1],) or len(self.layers) != ids.shape[0]:
            raise ValueError("TokenPaths: ids must be (L, T, K), seq (T,), layers of length L")
        if ids.shape[1] and (np.any(np.diff(seq) < 0) or seq[0] != 0 or seq[-1] != self.n_seq - 1):
            raise ValueError("TokenPaths: seq must run 0..n_seq-1 in non-decreasing order")
        if self.weights is not None and self.weights.shape != ids.shape:
            raise ValueError("TokenPaths: weights must have the shape of ids")
        for arr in (ids, seq, self.weights):
            if arr is not None:
                arr.setflags(write=False)  # shared through the readers' caches

    @property
    def L(self) -> int:
        """Recorded MoE layers."""
        return int(self.ids.shape[0])

    @property
    def T(self) -> int:
        """Tokens."""
        return int(self.ids.shape[1])

    @property
    def K(self) -> int:
        """Experts per token and layer."""
        return int(self.ids.shape[2])

    @property
    def offsets(self) -> np.ndarray:
        """Token offsets of the sequences: sequence i is tokens ``offsets[i]:offsets[i + 1]``."""
        return np.searchsorted(self.seq, np.arange(self.n_seq + 1))

    def tokens_of(self, sequences: np.ndarray) -> np.ndarray:
        """Indices (in token order) of every token of the given sequences."""
        return np.flatnonzero(np.isin(self.seq, sequences))

    def expert_counts(self, layer: int) -> np.ndarray:
        """How many tokens selected each expert at ``layer``; shape (n_experts,), int64."""
        return np.bincount(self.ids[layer].astype(np.int64).ravel(), minlength=self.n_experts)

    def pair_counts(self, layer: int) -> np.ndarray:
        """How many tokens selected both i and j at ``layer``; shape (n_experts, n_experts), diagonal = expert counts."""
        e, ids = self.n_experts, self.ids[layer].astype(np.int64)
        # x^T x of the one-hot rows, as a histogram of the K*K ordered id pairs of every token
        flat = (ids[:, :, None] * e + ids[:, None, :]).ravel()
        return np.bincount(flat, minlength=e * e).reshape(e, e)


class TraceSource(Protocol):
    """Anything that reads the tasks of a real trace into :class:`TokenPaths`."""

    def load(self, task: str) -> TokenPaths:
        """The token paths of ``task`` (raises :class:`InputError` for an unknown task)."""
        ...


@dataclass(frozen=True)
class SequenceSplit:
    """A train/test split of a task's sequences.

    Attributes
    ----------
    train, test : ndarray
        Sorted sequence indices; together they are 0..n_seq-1.
    """

    train: np.ndarray
    test: np.ndarray

    def part(self, which: str) -> np.ndarray:
        """``train`` or ``test``."""
        if which not in ("train", "test"):
            raise InputError(f"which must be train or test, got {which!r}", where="which")
        return self.train if which == "train" else self.test


def split_sequences(n_seq: int, split: float, seed: int) -> SequenceSplit:
    """The train/test split by sequence used by every trace family.

    A permutation of the sequences drawn from ``numpy.random.default_rng([seed, 0])``; its
    first ``min(n_seq, max(1, round(split * n_seq)))`` sequences are the train part.

    Raises
    ------
    InputError
        When ``split`` is not in (0, 1].
    """
    if not 0 < split <= 1:
        raise InputError("split must be in (0, 1]", where="split")
    perm = np.random.default_rng([seed, 0]).permutation(n_seq)
    n_train = min(n_seq, max(1, round(split * n_seq)))
    return SequenceSplit(np.sort(perm[:n_train]), np.sort(perm[n_train:]))


def select_tokens(paths: TokenPaths, split: float, which: str, tokens: int, seed: int) -> tuple[np.ndarray, dict]:
    """The tokens of a trace instance, and the metadata that lets anyone rebuild them.

    Parameters
    ----------
    paths
        The task.
    split, which
        Train fraction of the sequences and the part whose tokens are used
        (:func:`split_sequences`).
    tokens
        0 (or at least the part's token count): every token of the part; else a sample of
        that many tokens without replacement, drawn from ``default_rng([seed, 1])`` for train
        and ``default_rng([seed, 2])`` for test (the two parts share the split, not the draw).
    seed
        Seed of the split and of the sample.

    Returns
    -------
    idx : ndarray
        Sorted token indices.
    info : dict
        ``n_sequences``, ``train_sequences``, ``test_sequences``, ``tokens_available``,
        ``tokens_used``, ``token_index_min``/``max`` and ``token_index_sha256`` (SHA-256 of
        ``idx`` as int64 bytes).

    Raises
    ------
    InputError
        When the chosen part has no sequence.
    """
    parts = split_sequences(paths.n_seq, split, seed)
    chosen = parts.part(which)
    if chosen.size == 0:
        raise InputError(
            f"split={split} leaves no test sequence of the {paths.n_seq} of task {paths.task}", where="split"
        )
    pool = paths.tokens_of(chosen)
    if tokens == 0 or tokens >= pool.size:
        idx = pool
    else:
        rng = np.random.default_rng([seed, 1 if which == "train" else 2])
        idx = np.sort(rng.choice(pool, size=tokens, replace=False))
    info: dict[str, Any] = {
        "n_sequences": paths.n_seq,
        "train_sequences": parts.train.tolist(),
        "test_sequences": parts.test.tolist(),
        "tokens_available": int(pool.size),
        "tokens_used": int(idx.size),
        "token_index_min": int(idx.min()),
        "token_index_max": int(idx.max()),
        "token_index_sha256": token_index_sha256(idx),
    }
    return idx, info


def token_index_sha256(idx: np.ndarray) -> str:
    """SHA-256 of token indices as int64 bytes: the fingerprint of an instance's token set.

    :func:`select_tokens` records it; the replay compares a token stream against it.
    """
    return hashlib.sha256(np.asarray(idx).astype(np.int64).tobytes()).hexdigest()


def check_routing(ids: np.ndarray, n_experts: int) -> str | None:
    """Why ``ids`` (shape (..., K)) is not a valid Top-K routing (None when it is).

    Every id must be in [0, n_experts) and no token may repeat an expert at one layer.
    """
    if ids.size == 0:
        return None
    if ids.min() < 0 or ids.max() >= n_experts:
        return f"expert ids must be in [0, {n_experts})"
    if ids.shape[-1] > 1 and np.any(np.diff(np.sort(ids, axis=-1), axis=-1) == 0):
        return "a token repeats an expert id"
    return None
