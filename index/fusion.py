"""Fuse the dense and lexical channels into one score per entry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FusionWeights:
    """Weights of the convex combination; dense + lexical sum to 1."""

    dense: float = 0.6
    lexical: float = 0.4
    answer_text: float = 0.5  # how much a match in the answer counts against one in the questions
    second_question: float = 0.25  # how much an entry's second-best question adds to its best


def lexical_channel(
    lexical_q: np.ndarray, lexical_a: np.ndarray, weights: FusionWeights
) -> np.ndarray:
    """Combine question and answer BM25 scores; the answer counts only at a discount."""
    return np.maximum(lexical_q, weights.answer_text * lexical_a)


def fuse(dense: np.ndarray, lexical: np.ndarray, weights: FusionWeights) -> np.ndarray:
    """Combine per-entry channel scores, each already on [0, 1], into one score on [0, 1].

    Why a weighted sum of calibrated scores rather than reciprocal-rank fusion: rank fusion
    says which entry is best but not how good it is, and the dialogue needs an absolute score
    to decide between answering and admitting it does not know. Both channels are therefore
    brought onto [0, 1] with a meaning that holds across queries (dense: cosine above the
    encoder's unrelated-text floor; lexical: the share of the query's idf mass the entry
    matches), and then mixed. Dense carries paraphrases and English; lexical carries exact
    platform terms (薯条, 直客) that a small multilingual encoder blurs together. The answer
    text counts only at a discount, since it is long and mentions neighbouring topics.
    """
    return weights.dense * dense + weights.lexical * lexical
