"""Persistence of index builds: an embedding cache and atomically swapped build folders.

Layout under the index root (``$BOT_DATA_DIR/index``)::

    embeddings.sqlite        vectors cached by (encoder, model, role, text) hash
    builds/<name>/           one complete build: manifest.json, vectors.npy, owners.npy,
                             faiss.index and any extra files the caller stores with it
    CURRENT                  the name of the build that serves

A build is written into a temporary folder, flushed, renamed into ``builds/`` and only then
named in CURRENT (replaced atomically). A crash at any point leaves CURRENT naming the
previous complete build; leftovers are swept at the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import faiss
import numpy as np

KEEP_BUILDS = 3


class EmbeddingCache:
    """SQLite-backed cache of vectors, so an edit re-embeds only the texts it changed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._lock = threading.Lock()

    def embed(
        self,
        texts: Sequence[str],
        namespace: str,
        dim: int,
        encode: Callable[[list[str]], np.ndarray],
    ) -> tuple[np.ndarray, int]:
        """Return vectors for texts, encoding only the ones not cached; also the count encoded."""
        keys = [_text_key(namespace, t) for t in texts]
        found = self._get(keys, dim)
        missing = sorted({t for k, t in zip(keys, texts, strict=True) if k not in found})
        if missing:
            fresh = encode(missing)
            new = {_text_key(namespace, t): v for t, v in zip(missing, fresh, strict=True)}
            self._put(new)
            found.update(new)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out, len(missing)

    def _get(self, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, v FROM vec WHERE key IN ({marks})", chunk)
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if vec.size == dim:
                        found[key] = vec
        return found

    def _put(self, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", rows)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _text_key(namespace: str, text: str) -> str:
    return hashlib.sha256(f"{namespace}\x1f{text}".encode()).hexdigest()


def current_build(root: Path) -> Path | None:
    """Return the folder of the build that serves, or None if there is none."""
    try:
        name = (root / "CURRENT").read_text(encoding="utf-8").strip()
    except OSError:  # missing, or the data directory is unusable
        return None
    path = root / "builds" / name
    return path if name and (path / "manifest.json").is_file() else None


def read_manifest(build: Path) -> dict:
    """Read a build's manifest."""
    return json.loads((build / "manifest.json").read_text(encoding="utf-8"))


def write_build(
    root: Path,
    manifest: Mapping,
    vectors: np.ndarray,
    owners: np.ndarray,
    index: faiss.Index,
    extra: Mapping[str, bytes],
) -> Path:
    """Write a complete build and make it current in one atomic step; return its folder."""
    builds = root / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    _sweep_partial(builds)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=builds))
    np.save(tmp / "vectors.npy", vectors)
    np.save(tmp / "owners.npy", owners)
    faiss.write_index(index, str(tmp / "faiss.index"))
    for name, data in extra.items():
        (tmp / name).write_bytes(data)
    # The manifest goes last: a folder without one is never taken for a build.
    (tmp / "manifest.json").write_text(json.dumps(dict(manifest), ensure_ascii=False, indent=1))
    _fsync_tree(tmp)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{manifest['knowledge_hash'][:12]}-{os.getpid()}"
    final = builds / name
    os.rename(tmp, final)
    pointer = root / ".CURRENT.tmp"
    pointer.write_text(name, encoding="utf-8")
    _fsync_file(pointer)
    os.replace(pointer, root / "CURRENT")
    _prune(builds, keep=name)
    return final


def load_arrays(build: Path) -> tuple[np.ndarray, faiss.Index]:
    """Read a build's owner ids and FAISS index (which holds the vectors it serves)."""
    return np.load(build / "owners.npy"), faiss.read_index(str(build / "faiss.index"))


def _sweep_partial(builds: Path) -> None:
    for path in builds.glob(".partial-*"):
        shutil.rmtree(path, ignore_errors=True)


def _prune(builds: Path, keep: str) -> None:
    done = sorted(p for p in builds.iterdir() if p.is_dir() and not p.name.startswith("."))
    for path in done[:-KEEP_BUILDS]:
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        _fsync_file(path)
