"""The classifier's cheap first pass: a linear model over token n-grams that picks the windows to score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BIGRAM_BUCKETS = 1 << 18  # hashed (previous token, token) pairs
_MULTIPLIER = 1_000_003


def ngram_indices(ids: npt.NDArray[np.int64], vocab: int) -> npt.NDArray[np.int64]:
    """The feature indices of one token sequence: every token id, then every bigram's hash bucket.

    Training (training/train_injection.py) and the detector use this one function, so that the
    weights mean the same thing in both.
    """
    ids = np.asarray(ids, dtype=np.int64)
    pairs = (ids[:-1] * _MULTIPLIER + ids[1:]) % BIGRAM_BUCKETS + vocab
    return np.concatenate([ids, pairs])


@dataclass(frozen=True)
class WindowFilter:
    """Ranks windows by a weighted count of their n-grams; the network scores only the best ranked.

    A text of at most ``max_windows`` windows is scored whole, so short and medium texts are decided
    exactly as without the filter; a longer one has its ``max_windows`` best ranked windows scored. A
    rank, not a threshold: a threshold chosen on known phrasings dropped far more attacks worded in
    ways training never saw (MODEL_CARD.md).
    """

    weights: npt.NDArray[np.float32]  # vocab + BIGRAM_BUCKETS
    vocab: int
    bias: float
    max_windows: int

    def scores(self, windows: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """The linear score (a logit) of each window's token ids."""
        out = np.empty(len(windows), dtype=np.float32)
        for i, ids in enumerate(windows):
            out[i] = self.bias + self.weights[ngram_indices(np.asarray(ids), self.vocab)].sum()
        return out

    def pick(self, windows: Sequence[Sequence[int]]) -> list[int]:
        """Indices of the windows the network should score, in text order."""
        if len(windows) <= self.max_windows:
            return list(range(len(windows)))
        best = np.argsort(-self.scores(windows), kind="stable")[: self.max_windows]
        return sorted(int(i) for i in best)


def load(path: str, max_windows: int) -> WindowFilter:
    """A filter from its .npz file (``weights``, ``vocab``, ``bias``) and the model config's settings."""
    with np.load(path) as data:
        weights = np.asarray(data["weights"], dtype=np.float32)
        vocab, bias = int(data["vocab"]), float(data["bias"])
    if weights.shape != (vocab + BIGRAM_BUCKETS,):
        raise ValueError(f"{path}: weights of shape {weights.shape}, expected ({vocab + BIGRAM_BUCKETS},)")
    return WindowFilter(weights, vocab, bias, max_windows)
