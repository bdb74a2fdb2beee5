"""The live knowledge: load, build or reuse the index, and swap reloads in atomically."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bot.kb.loader import Entry, KnowledgeBase, KnowledgeError, KnownGap, load_knowledge
from index.encoders import Encoder
from index.fusion import FusionWeights
from index.normalize import Normalizer
from index.persist import current_build
from index.search import Document, Progress, QueryCache, SearchIndex, open_index

log = logging.getLogger(__name__)

KB_SNAPSHOT = "knowledge.json"
QUERY_CACHE_SIZE = 4096  # query vectors kept (about 1.6 KB each with 384 dimensions)


@dataclass(frozen=True)
class Snapshot:
    """One consistent generation of knowledge and its index; replaced whole, never mutated."""

    kb: KnowledgeBase
    index: SearchIndex
    normalizer: Normalizer
    origin: str  # "files", or the build folder served when the files are broken
    version: str = ""  # the index build's folder name: which knowledge version serves


@dataclass(frozen=True)
class ReloadReport:
    """What a reload changed and how long it took."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    seconds: float
    embedded: int
    entries: int


def documents(kb: KnowledgeBase) -> list[Document]:
    """Describe each entry to the index: title and questions, and the answer text; and each
    known gap: its topic and questions, with no passage (its note says what is missing, and
    words about what is missing are no evidence that a question asks for it)."""
    return [*(Document(e.id, (e.title, *e.questions, *_english(e)), e.answer)
              for e in kb.entries.values()),
            *(Document(g.id, (g.topic, *g.questions, g.topic_en, *g.questions_en),
                       "") for g in kb.gaps.values())]


def _english(entry: Entry) -> tuple[str, ...]:
    """The English title and questions, so English messages find the entry too."""
    return tuple(q for q in (entry.title_en, *entry.questions_en) if q)


class KnowledgeService:
    """Owns the current Snapshot; readers take `current`, reloads swap it in one assignment."""

    def __init__(self, knowledge_dir: Path, data_dir: Path, encoder: Encoder,
                 weights: FusionWeights | None = None) -> None:
        self.knowledge_dir = Path(knowledge_dir)
        self.index_root = Path(data_dir) / "index"
        self.encoder = encoder
        self.weights = weights or FusionWeights()
        self._current: Snapshot | None = None
        self._reload_lock = threading.Lock()
        # A query vector depends only on the normalised text and the encoder, and a reload
        # changes neither (an alias edit changes the normalised text, so the key): every build
        # shares one cache, and a reload does not send each question back to the encoder.
        self.query_cache = QueryCache(QUERY_CACHE_SIZE)

    @property
    def started(self) -> bool:
        """Tell whether knowledge has been loaded."""
        return self._current is not None

    @property
    def current(self) -> Snapshot:
        """Return the snapshot that serves now."""
        if self._current is None:
            raise RuntimeError("knowledge not loaded: call start() first")
        return self._current

    def start(self, progress: Progress | None = None) -> list[str]:
        """Load the knowledge; if the files are broken, serve the last good build instead.

        Returns the problems met (empty when the files loaded). Raises KnowledgeError only
        when the files are broken and no earlier build exists. progress hears how the
        embedding goes when the index has to be built: (texts done, texts to embed).
        """
        try:
            self._current = self._build(load_knowledge(self.knowledge_dir), force=False,
                                        progress=progress)[0]
            return []
        except KnowledgeError as exc:
            fallback = self._last_good()
            if fallback is None:
                raise
            self._current = fallback
            problems = [str(p) for p in exc.problems]
            log.error("knowledge files have errors; serving the last good build %s:\n%s",
                      fallback.origin, "\n".join(problems))
            return problems

    def reload(self, force: bool = False, progress: Progress | None = None) -> ReloadReport:
        """Re-read the files, validate, rebuild and swap; on errors keep serving the old one."""
        with self._reload_lock:
            started = time.perf_counter()
            kb = load_knowledge(self.knowledge_dir)  # raises KnowledgeError, nothing swapped
            old = _contents(self._current.kb) if self._current else {}
            snapshot, embedded = self._build(kb, force=force, progress=progress)
            self._current = snapshot
            new = _contents(kb)
            return ReloadReport(
                added=[k for k in new if k not in old],
                changed=[k for k in new if k in old and new[k] != old[k]],
                removed=[k for k in old if k not in new],
                seconds=time.perf_counter() - started,
                embedded=embedded,
                entries=len(kb.entries),
            )

    def _build(self, kb: KnowledgeBase, force: bool, origin: str = "files",
               progress: Progress | None = None) -> tuple[Snapshot, int]:
        normalizer = kb.normalizer()
        index, report = open_index(documents(kb), normalizer, self.encoder, self.index_root,
                                   self.weights, extra={KB_SNAPSHOT: kb.to_json()}, force=force,
                                   progress=progress)
        index.query_cache = self.query_cache
        if report.reused:
            log.info("reused index build %s", report.build_dir.name if report.build_dir else "")
        else:
            log.info("built index: %d entries, %d texts embedded, %.2fs",
                     len(kb.entries), report.embedded, report.seconds)
        version = report.build_dir.name if report.build_dir else "memory"
        return Snapshot(kb, index, normalizer, origin, version), report.embedded

    def _last_good(self) -> Snapshot | None:
        build = current_build(self.index_root)
        if build is None or not (build / KB_SNAPSHOT).is_file():
            return None
        kb = KnowledgeBase.from_json((build / KB_SNAPSHOT).read_bytes())
        return self._build(kb, force=False, origin=build.name)[0]


def _contents(kb: KnowledgeBase) -> dict[str, Entry | KnownGap]:
    """Return the entries and known gaps by id, without their locations, so moving a file
    (or a gap within gaps.yaml) is not a change."""
    out: dict[str, Entry | KnownGap] = {k: replace(e, path="", line=0)
                                        for k, e in kb.entries.items()}
    out.update((k, replace(g, path="", line=0)) for k, g in kb.gaps.items())
    return out
