"""Dense retrieval over FAISS, as pure functions over arrays."""

from __future__ import annotations

import faiss
import numpy as np


def build_faiss(vectors: np.ndarray) -> faiss.Index:
    """Build an exact inner-product index over L2-normalised rows (so scores are cosines)."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def best_per_owner(
    index: faiss.Index, query: np.ndarray, owners: np.ndarray, n_owners: int, k: int = 256,
    second_weight: float = 0.0,
) -> np.ndarray:
    """Return, for each owner (entry), how close its questions come to query.

    The score is the highest cosine of any of its vectors, blended with its second highest
    by second_weight: an entry two of whose phrasings match is a safer bet than one that a
    single stray phrasing matches. Owners none of whose vectors are among the k nearest get
    -1; an owner with one vector near uses that cosine for both.
    """
    best = np.full(n_owners, -1.0, dtype=np.float32)
    if index.ntotal == 0:
        return best
    k = min(k, index.ntotal)
    scores, ids = index.search(query.reshape(1, -1).astype(np.float32), k)
    found = ids[0] >= 0
    hit_owners, hit_scores = owners[ids[0][found]], scores[0][found]
    # FAISS returns neighbours best first: an owner's first occurrence is its best vector.
    _, first = np.unique(hit_owners, return_index=True)
    best[hit_owners[first]] = hit_scores[first]
    if second_weight <= 0.0:
        return best
    rest = np.ones(len(hit_owners), dtype=bool)
    rest[first] = False
    second = best.copy()
    _, again = np.unique(hit_owners[rest], return_index=True)
    second[hit_owners[rest][again]] = hit_scores[rest][again]
    return np.where(best > -1.0, (1.0 - second_weight) * best + second_weight * second, best)


def background_similarity(vectors: np.ndarray, owners: np.ndarray, sample: int = 2000) -> float:
    """Estimate the cosine two unrelated texts get from this encoder.

    Encoders differ: e5 puts almost any two Chinese sentences above 0.8, MiniLM near 0.1.
    The median similarity between vectors of different entries is a data-driven floor that
    lets one dense threshold serve every encoder.
    """
    n = len(vectors)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(0)
    pick = rng.choice(n, size=min(n, sample), replace=False)
    sims = vectors[pick] @ vectors[pick].T
    other = owners[pick][:, None] != owners[pick][None, :]
    values = sims[other]
    return float(np.median(values)) if values.size else 0.0


def rescale(cosines: np.ndarray, floor: float) -> np.ndarray:
    """Map cosines onto [0, 1], where floor (unrelated) becomes 0 and 1 stays 1."""
    return np.clip((cosines - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)


def close_pairs(index: faiss.Index, owners: np.ndarray, k: int = 8
                ) -> list[tuple[float, int, int]]:
    """Return the closest two vectors of each pair of owners that are neighbours at all.

    Each row is (cosine, vector of the lower owner, vector of the higher owner), most similar
    first. Only each vector's k nearest neighbours are looked at, so the cost grows as n*k.
    """
    n = index.ntotal
    if n < 2:
        return []
    vectors = index.reconstruct_n(0, n)
    scores, ids = index.search(vectors, min(k + 1, n))
    best: dict[tuple[int, int], tuple[float, int, int]] = {}
    for i in range(n):
        for score, j in zip(scores[i], ids[i], strict=True):
            if j < 0 or owners[j] == owners[i]:
                continue
            a, b = (i, int(j)) if owners[i] < owners[j] else (int(j), i)
            pair = (int(owners[a]), int(owners[b]))
            if pair not in best or score > best[pair][0]:
                best[pair] = (float(score), a, b)
    return sorted(best.values(), reverse=True)
