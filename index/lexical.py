"""BM25 over Chinese character unigrams and bigrams (and Latin words), as pure functions.

A general-purpose tokenizer keeps a whole Chinese sentence as one token, so nothing would
ever match; character n-grams need no dictionary, survive unknown platform jargon and keep
partial credit when one character of a term is mistyped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_RUNS = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+(?:[.'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Split normalised text into CJK unigrams and bigrams and Latin/digit words."""
    tokens: list[str] = []
    for run in _RUNS.findall(text):
        if "\u4e00" <= run[0] <= "\u9fff":
            tokens.extend(run)
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            tokens.append(run)
    return tokens


@dataclass(frozen=True)
class Bm25Index:
    """Per-term postings with precomputed BM25 document weights."""

    vocab: dict[str, int]
    doc_ids: list[np.ndarray]
    weights: list[np.ndarray]
    idf: np.ndarray
    unseen_idf: float
    n_docs: int


def build_bm25(docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> Bm25Index:
    """Index tokenised documents for BM25 scoring."""
    n = len(docs)
    lengths = np.array([len(d) for d in docs], dtype=np.float32)
    avg = float(lengths.mean()) if n and lengths.sum() else 1.0
    vocab: dict[str, int] = {}
    term_ids: list[int] = []
    doc_of: list[int] = []
    counts: list[int] = []
    for doc_id, doc in enumerate(docs):
        for term, count in Counter(doc).items():
            term_ids.append(vocab.setdefault(term, len(vocab)))
            doc_of.append(doc_id)
            counts.append(count)
    # All postings at once, grouped by term; a stable sort keeps each term's documents in order.
    terms = np.array(term_ids, dtype=np.int64)
    order = np.argsort(terms, kind="stable")
    terms = terms[order]
    ids = np.array(doc_of, dtype=np.int64)[order]
    tf = np.array(counts, dtype=np.float32)[order]
    df = np.bincount(terms, minlength=len(vocab)).astype(np.float32)
    idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = k1 * (1.0 - b + b * lengths[ids] / avg)
    all_weights = idf[terms] * tf * (k1 + 1.0) / (tf + norm)
    bounds = np.cumsum(df.astype(np.int64))[:-1]
    doc_ids = np.split(ids, bounds) if len(vocab) else []
    weights = np.split(all_weights, bounds) if len(vocab) else []
    unseen = float(math.log(1.0 + (n + 0.5) / 0.5))
    return Bm25Index(vocab, doc_ids, weights, idf, unseen, n)


def bm25_scores(index: Bm25Index, query: Sequence[str]) -> np.ndarray:
    """Score every document against a tokenised query, scaled into [0, 1].

    The raw BM25 sum is divided by what a document matching each distinct query term once,
    at average length, would get (the sum of the terms' idf). Terms the index has never seen
    count in that sum with the highest idf, so a query made mostly of words foreign to the
    knowledge scores low however well its one common word matches. The result is comparable
    across queries, which a fallback threshold needs.
    """
    scores = np.zeros(index.n_docs, dtype=np.float32)
    terms = set(query)
    if not terms or not index.n_docs:
        return scores
    ceiling = 0.0
    for term in terms:
        tid = index.vocab.get(term)
        if tid is None:
            ceiling += index.unseen_idf
            continue
        ceiling += float(index.idf[tid])
        scores[index.doc_ids[tid]] += index.weights[tid]  # ids are unique within a posting
    return np.minimum(scores / max(ceiling, 1e-9), 1.0)
