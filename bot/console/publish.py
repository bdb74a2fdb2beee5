"""Publishing the draft safely: validate, build, evaluate, then swap; versions and rollback.

A candidate is built in memory from the draft with the service's own encoder, through the
persistent embedding cache, so nothing the bot serves changes until the gate is passed:
- the real engine answers the development set's report half (the "full" system of
  `python -m bot eval`); overall correctness must not fall below the published figure;
- the card examples (the questions the project is known by) must still come out right.
Then the draft is copied into the knowledge folder, `KnowledgeService.reload()` builds and
swaps the snapshot in one assignment, other replicas are told to reload, and the published
folder is kept as a numbered version that can be rolled back to.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from bot.console.db import ConsoleDB
from bot.console.files import Checked, Draft, atomic_write, check_folder, copy_tree, manifest
from bot.dialogue.engine import ConversationKey, Engine
from bot.dialogue.replies import Reply
from bot.evaluation import Case, load_cases, run_engine, score, select
from bot.kb.loader import Entry, KnowledgeBase, KnowledgeError
from bot.kb.service import KnowledgeService, Snapshot, documents
from bot.settings import PROJECT_ROOT, Settings
from bot.store.sqlite import SQLiteStore
from index.encoders import Encoder
from index.persist import EmbeddingCache
from index.search import QueryCache, open_index

log = logging.getLogger(__name__)

DEV_SET = PROJECT_ROOT / "tests" / "eval" / "dev.yaml"
# Texts per encoder call: small, so a seller's question waits at most one short batch while
# the console embeds the development set beside the serving bot.
ENCODE_CHUNK = 8
EPSILON = 1e-9


# ---------------------------------------------------------------------- the card examples


@dataclass(frozen=True)
class Card:
    """A question whose outcome must survive every publish."""

    question: str
    kind: str  # "answer" or "clarify"
    entry: str = ""  # the entry id, or a prefix ending in "-" (any shutiao-* entry)
    concept: str = ""

    @property
    def expected(self) -> str:
        if self.kind == "clarify":
            return f"clarify {self.concept}"
        return f"answer {self.entry}*" if self.entry.endswith("-") else f"answer {self.entry}"

    def judge(self, reply: Reply) -> tuple[str, bool]:
        got = (f"clarify {reply.concept or ''}".strip() if reply.kind == "clarify"
               else f"answer {reply.entry_id}" if reply.kind == "answer" else reply.kind)
        if self.kind == "clarify":
            return got, reply.kind == "clarify" and reply.concept == self.concept
        entry = reply.entry_id or ""
        ok = reply.kind == "answer" and (entry.startswith(self.entry) if self.entry.endswith("-")
                                         else entry == self.entry)
        return got, ok


CARDS = (
    Card("个体店怎么开", "clarify", concept="getidian"),
    Card("薯条能带来订单吗", "answer", entry="shutiao-"),
    Card("薯条是投流工具吗", "answer", entry="shutiao-"),
    Card("直客是什么", "answer", entry="zhike-what"),
)


# ---------------------------------------------------------------------- evaluation


class CachedEncoder:
    """The service's encoder behind the persistent embedding cache of its index folder.

    Candidate builds and the development set's questions are embedded once and kept, so a
    publish re-embeds only the texts an edit changed, and the later `reload()` none at all.
    """

    def __init__(self, inner: Encoder, path: Path) -> None:
        self.inner = inner
        self.name, self.model, self.dim = inner.name, inner.model, inner.dim
        self.path = path
        self._cache: EmbeddingCache | None = None
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], role: str) -> np.ndarray:
        chunks = [self.inner.encode(texts[i:i + ENCODE_CHUNK], role)
                  for i in range(0, len(texts), ENCODE_CHUNK)]
        return np.vstack(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)

    def encode(self, texts: Sequence[str], role: str) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            with self._lock:
                if self._cache is None:
                    self._cache = EmbeddingCache(self.path)
            namespace = f"{self.name}|{self.model}|{role}"
            vectors, _ = self._cache.embed(texts, namespace, self.dim,
                                           lambda missing: self._encode(missing, role))
            return vectors
        except (OSError, sqlite3.Error) as exc:
            log.warning("embedding cache %s unusable (%s); embedding directly", self.path, exc)
            return self._encode(texts, role)


class _Pinned(KnowledgeService):
    """A service that serves one fixed snapshot (the engine and the evaluation read
    `current`); nothing is loaded or built, so the base initialiser is not run."""

    def __init__(self, snap: Snapshot) -> None:
        self._current = snap


@dataclass
class Figures:
    """The development set's outcome for one version of the knowledge."""

    overall: float = 0.0
    correct: int = 0
    cases: int = 0
    by_category: dict[str, list[int]] = field(default_factory=dict)
    cards: list[tuple[str, str, str, bool]] = field(default_factory=list)  # q, want, got, ok
    misses: list[tuple[str, str, str, str]] = field(default_factory=list)  # cat, q, want, got

    @property
    def cards_ok(self) -> bool:
        return all(ok for *_, ok in self.cards)

    @classmethod
    def from_dict(cls, data: dict) -> Figures:
        return cls(data["overall"], data["correct"], data["cases"],
                   {k: list(v) for k, v in data["by_category"].items()},
                   [tuple(c) for c in data["cards"]],  # type: ignore[misc]
                   [tuple(m) for m in data["misses"]])  # type: ignore[misc]


def knowledge_hash(kb: KnowledgeBase) -> str:
    return hashlib.sha256(kb.to_json()).hexdigest()


# ---------------------------------------------------------------------- versions and results


@dataclass
class Version:
    n: int
    who: str
    at: float
    action: str  # initial, publish, rollback
    note: str = ""
    of: int = 0  # the version a rollback restored
    overall: float | None = None
    cases: int = 0
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    hash: str = ""

    @property
    def when(self) -> str:
        return dt.datetime.fromtimestamp(self.at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Diff:
    """What publishing would change: entries added, changed, removed; files touched."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.files)


@dataclass
class Result:
    """The outcome of a publish or a rollback, for the page that reports it."""

    ok: bool
    action: str
    reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    diff: Diff = field(default_factory=Diff)
    before: Figures | None = None
    after: Figures | None = None
    version: Version | None = None
    seconds: float = 0.0
    announced: bool = False

    def _moved(self, into: Figures | None, out_of: Figures | None) -> list[tuple[str, ...]]:
        if into is None:
            return []
        known = {(m[0], m[1]) for m in (out_of.misses if out_of else [])}
        return [m for m in into.misses if (m[0], m[1]) not in known]

    @property
    def broken(self) -> list[tuple[str, ...]]:
        """Development cases the new version gets wrong that the served one got right."""
        return self._moved(self.after, self.before) if self.before else []

    @property
    def fixed(self) -> list[tuple[str, ...]]:
        """Development cases the new version gets right that the served one got wrong."""
        return self._moved(self.before, self.after) if self.after else []


def entry_diff(old: dict[str, Entry], new: dict[str, Entry]) -> Diff:
    def content(e: Entry) -> Entry:
        return replace(e, path="", line=0)  # moving a file is no change

    return Diff(added=[k for k in new if k not in old],
                changed=[k for k in new if k in old and content(new[k]) != content(old[k])],
                removed=[k for k in old if k not in new])


# ---------------------------------------------------------------------- the publisher


class Publisher:
    """Evaluate, publish, keep versions and roll back; one operation at a time."""

    def __init__(self, service: KnowledgeService, settings: Settings, draft: Draft,
                 db: ConsoleDB, root: Path, announce: Callable[[], object] | None = None,
                 clock: Callable[[], float] = time.time, dev_set: Path = DEV_SET) -> None:
        self.service = service
        self.settings = settings
        self.draft = draft
        self.db = db
        self.versions_dir = root / "versions"
        self.announce = announce
        self.clock = clock
        self.encoder = CachedEncoder(service.encoder, service.index_root / "embeddings.sqlite")
        # Its own query cache: evaluating must not push sellers' questions out of the bot's.
        self.query_cache = QueryCache(8192)
        self.lock = threading.Lock()
        self.dev_set = dev_set
        self.cases: list[Case] = (select(load_cases(dev_set), "report") if dev_set.is_file()
                                  else [])
        self._draft_snap: tuple[str, Snapshot] | None = None

    # ------------------------------------------------------------------ building and scoring

    def snapshot_of(self, kb: KnowledgeBase) -> Snapshot:
        """Build a candidate in memory (nothing on disk or in service changes)."""
        normalizer = kb.normalizer()
        index, _ = open_index(documents(kb), normalizer, self.encoder, None,
                              self.service.weights)
        index.query_cache = self.query_cache
        return Snapshot(kb, index, normalizer, "console")

    def draft_snapshot(self, checked: Checked, key: str) -> Snapshot | None:
        """The draft's candidate, rebuilt only when the draft changed (key: its manifest)."""
        if checked.kb is None:
            return None
        cached = self._draft_snap
        if cached is None or cached[0] != key:
            cached = self._draft_snap = (key, self.snapshot_of(checked.kb))
        return cached[1]

    def serving(self) -> Snapshot:
        """The snapshot the bot serves, searched through the cached encoder."""
        snap = self.service.current
        index = replace(snap.index, encoder=self.encoder, query_cache=self.query_cache)
        return Snapshot(snap.kb, index, snap.normalizer, snap.origin)

    def engine(self, snap: Snapshot) -> Engine:
        """The real engine over a snapshot, with a store of its own in memory."""
        return Engine(_Pinned(snap), SQLiteStore(":memory:"), self.settings, clock=self.clock)

    def _warm(self, snap: Snapshot) -> None:
        """Embed the development set's questions in batches (far cheaper than one by one)."""
        texts = sorted({n for case in self.cases for turn in case.turns
                        if (n := snap.normalizer(turn))})
        for text, vector in zip(texts, self.encoder.encode(texts, "query"), strict=True):
            self.query_cache.get(text, functools.partial(np.asarray, vector))

    def figures(self, snap: Snapshot) -> Figures:
        """Score a snapshot on the development set and the cards (cached per knowledge)."""
        key = self._figures_key(snap.kb)
        stored = self.db.figures(key)
        if stored is not None:
            return Figures.from_dict(stored)
        self._warm(snap)
        pinned = _Pinned(snap)
        figures = Figures()
        if self.cases:
            outcomes = run_engine(pinned, self.settings, self.cases)
            metrics = score(outcomes)
            figures = Figures(
                overall=metrics.overall, correct=sum(o.correct for o in outcomes),
                cases=len(outcomes),
                by_category={k: list(v) for k, v in metrics.by_category.items()},
                misses=[(o.case.category, o.case.text, "|".join(sorted(o.case.expect)), o.got)
                        for o in outcomes if not o.correct])
        engine = self.engine(snap)
        for i, card in enumerate(CARDS):
            got, ok = card.judge(engine.reply(ConversationKey("console", "card", str(i)),
                                              card.question))
            figures.cards.append((card.question, card.expected, got, ok))
        self.db.save_figures(key, asdict(figures), self.clock())
        return figures

    def _figures_key(self, kb: KnowledgeBase) -> str:
        """Figures depend on the knowledge, the development set and the thresholds."""
        cases = self.dev_set.read_bytes() if self.dev_set.is_file() else b""
        tuning = repr((self.settings.thresholds, self.service.weights)).encode()
        return hashlib.sha256(kb.to_json() + cases + tuning).hexdigest()

    def prepare(self) -> None:
        """Score the serving knowledge ahead of the first publish (run in the background)."""
        started = time.perf_counter()
        with self.lock:
            try:
                self.figures(self.serving())
            except Exception:  # a background courtesy: the publish computes it again
                log.exception("scoring the published knowledge failed")
                return
        log.info("console: published knowledge scored in %.1fs", time.perf_counter() - started)

    def published_figures(self) -> Figures | None:
        """The serving knowledge's figures if already computed (never computes)."""
        stored = self.db.figures(self._figures_key(self.service.current.kb))
        return Figures.from_dict(stored) if stored else None

    # ------------------------------------------------------------------ what would change

    def plan(self, checked: Checked) -> Diff:
        diff = (entry_diff(self.service.current.kb.entries, checked.kb.entries)
                if checked.kb is not None else Diff())
        diff.files = self.draft.pending()
        return diff

    # ------------------------------------------------------------------ publish

    def publish(self, who: str, note: str = "") -> Result:
        """Validate, evaluate and, if nothing got worse, publish the draft."""
        started = time.perf_counter()
        with self.lock:
            result = self._publish(who, note)
        result.seconds = time.perf_counter() - started
        self.db.audit(self.clock(), who, "publish" if result.ok else "publish_refused",
                      f"version {result.version.n}" if result.version else "draft",
                      _summary(result))
        return result

    def _publish(self, who: str, note: str) -> Result:
        conflicts = self.draft.sync()
        if conflicts:
            return Result(False, "publish", reasons=[
                "这些文件在服务器上和草稿里都被改过，请先在“条目”页处理冲突："
                + "、".join(conflicts)])
        evaluated = manifest(self.draft.dir)
        checked = self.draft.check()
        diff = self.plan(checked)
        if checked.errors or checked.kb is None:
            return Result(False, "publish", reasons=["草稿没有通过检查，请先修正下面的问题。"],
                          problems=[str(p) for p in checked.errors], diff=diff)
        if not diff.files:
            return Result(False, "publish", diff=diff,
                          reasons=["草稿和正在服务的版本一样，没有可发布的改动。"])
        before = self.figures(self.serving())
        after = self.figures(self.snapshot_of(checked.kb))
        result = Result(False, "publish", diff=diff, before=before, after=after)
        for question, want, got, ok in after.cards:
            if not ok:
                result.reasons.append(f"示例问题「{question}」应得到 {want}，现在得到 {got}。")
        if self.cases and after.overall < before.overall - EPSILON:
            result.reasons.append(
                f"开发集总体正确率从 {before.overall:.1%} 降到 {after.overall:.1%}"
                f"（{before.correct}/{before.cases} → {after.correct}/{after.cases}）。")
        if result.reasons:
            return result
        try:
            self.draft.publish_into_live(evaluated)
        except ValueError:
            self.draft.sync()
            result.reasons.append("测评期间草稿或服务器上的知识库文件又被改过了；"
                                  "请看一下最新的改动，再发布一次。")
            return result
        try:
            self.service.reload()
        except KnowledgeError as exc:  # validated above; only a loader change gets here
            self._restore_latest()
            result.reasons.append("发布后的文件没能加载，已恢复上一个版本。")
            result.problems = [str(p) for p in exc.problems]
            return result
        result.ok = True
        result.version = self._record("publish", who, note, after, diff)
        result.announced = self._announce()
        return result

    # ------------------------------------------------------------------ versions

    def versions(self) -> list[Version]:
        found = []
        if self.versions_dir.is_dir():
            for meta in self.versions_dir.glob("*/meta.json"):
                try:
                    found.append(Version(**json.loads(meta.read_text(encoding="utf-8"))))
                except (OSError, ValueError, TypeError):
                    log.warning("unreadable version record %s", meta)
        return sorted(found, key=lambda v: -v.n)

    def ensure_initial(self) -> None:
        """Keep the knowledge the console found as version 1, so it can be returned to."""
        if not self.versions():
            kb = self.service.current.kb
            self._record("initial", "server", "the knowledge when the console first started",
                         None, Diff(added=list(kb.entries)))

    def _record(self, action: str, who: str, note: str, figures: Figures | None, diff: Diff,
                of: int = 0) -> Version:
        latest = self.versions()
        n = latest[0].n + 1 if latest else 1
        target = self.versions_dir / str(n)
        staging = self.versions_dir / f".{n}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        copy_tree(self.draft.live, staging / "knowledge")
        version = Version(n, who, self.clock(), action, note, of,
                          figures.overall if figures and figures.cases else None,
                          figures.cases if figures else 0, diff.added, diff.changed,
                          diff.removed, knowledge_hash(self.service.current.kb))
        atomic_write(staging / "meta.json", json.dumps(asdict(version), ensure_ascii=False,
                                                       indent=1))
        staging.rename(target)
        return version

    def _restore_latest(self) -> None:
        latest = self.versions()
        if latest:
            mirror(self.versions_dir / str(latest[0].n) / "knowledge", self.draft.live)
            self.draft.sync()

    def rollback(self, n: int, who: str) -> Result:
        """Serve an earlier version again (validated, not gated: it was published before)."""
        started = time.perf_counter()
        with self.lock:
            result = self._rollback(n, who)
        result.seconds = time.perf_counter() - started
        self.db.audit(self.clock(), who, "rollback" if result.ok else "rollback_refused",
                      f"version {n}", _summary(result))
        return result

    def _rollback(self, n: int, who: str) -> Result:
        folder = self.versions_dir / str(n) / "knowledge"
        if not folder.is_dir():
            return Result(False, "rollback", reasons=[f"没有版本 {n}。"])
        checked = check_folder(folder)
        if checked.errors or checked.kb is None:
            return Result(False, "rollback", reasons=[f"版本 {n} 不能通过现在的检查。"],
                          problems=[str(p) for p in checked.errors])
        diff = entry_diff(self.service.current.kb.entries, checked.kb.entries)
        live = manifest(self.draft.live)
        target = manifest(folder)
        diff.files = sorted(r for r in live.keys() | target.keys() if live.get(r) != target.get(r))
        before = self.published_figures()
        mirror(folder, self.draft.live)
        try:
            self.service.reload()
        except KnowledgeError as exc:
            self._restore_latest()
            return Result(False, "rollback", reasons=["回滚后的文件没能加载，已恢复。"],
                          problems=[str(p) for p in exc.problems])
        self.draft.reset()
        after = self.figures(self.serving())
        result = Result(True, "rollback", diff=diff, before=before, after=after)
        result.version = self._record("rollback", who, f"rolled back to version {n}", after, diff,
                                      of=n)
        result.announced = self._announce()
        return result

    def _announce(self) -> bool:
        if self.announce is None:
            return False
        return self.announce() is not None


def mirror(source: Path, target: Path) -> None:
    """Make target's files equal source's, each written atomically; extra files removed."""
    want, have = manifest(source), manifest(target)
    for rel, digest in want.items():
        if have.get(rel) != digest:
            atomic_write(target / rel, (source / rel).read_text(encoding="utf-8"))
    for rel in have.keys() - want.keys():
        (target / rel).unlink()


def _summary(result: Result) -> str:
    lines = [*result.reasons, *result.problems]
    d = result.diff
    for label, ids in (("added", d.added), ("changed", d.changed), ("removed", d.removed)):
        if ids:
            lines.append(f"{label}: {', '.join(ids)}")
    if result.before and result.after and result.after.cases:
        lines.append(f"overall {result.before.overall:.3f} -> {result.after.overall:.3f}")
    return "\n".join(lines)
