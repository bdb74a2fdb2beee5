"""Measure answer quality on the development set, for the bot and three baselines.

Four systems answer the same cases:
- full: the real engine (concepts, clarification, thresholds, dialogue state);
- lexical: the BM25 channel alone, nearest entry or fallback below a threshold;
- dense: the encoder's nearest entry alone (cosine), or fallback below a threshold;
- hybrid: what LangChain-Chatchat builds: jieba `lcut_for_search` BM25 over each entry's text and
  the dense ranking, fused by weighted reciprocal rank (0.5/0.5, c=60), fallback below a
  threshold. It needs the `eval` extra (jieba) and is left out without it.
The baselines have no dialogue: a multi-turn case reaches them as its turns joined into one
message. Each baseline's threshold is chosen on the calibration half, like the engine's.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from bot.dialogue import answerability
from bot.dialogue.engine import ConversationKey, Engine
from bot.kb.loader import KnowledgeBase
from bot.kb.service import KnowledgeService, Snapshot
from bot.settings import Settings, Thresholds
from bot.store.sqlite import SQLiteStore

CATEGORIES = ("answerable", "ambiguous", "out_of_scope", "typo", "english", "multiturn", "long")
CLARIFY, FALLBACK = "clarify", "fallback"
HALVES = ("calibrate", "report", "all")
# The minimum size of each section of the development set (issue 3).
MINIMUMS = {"answerable": 120, "ambiguous": 30, "out_of_scope": 30, "typo": 20, "english": 10,
            "multiturn": 10, "long": 20}


@dataclass(frozen=True)
class Case:
    """One labelled conversation: its turns and the acceptable outcomes of the last one."""

    category: str
    turns: tuple[str, ...]
    expect: frozenset[str]  # entry ids, or {"clarify"}, or {"fallback"}
    concept: str | None
    half: str

    @property
    def text(self) -> str:
        return " / ".join(self.turns)

    @property
    def wants_entry(self) -> bool:
        return not self.expect & {CLARIFY, FALLBACK}


@dataclass(frozen=True)
class Outcome:
    """What one system did with one case: an entry id, clarify or fallback, and its ranking."""

    case: Case
    got: str
    concept: str | None = None
    ranking: tuple[str, ...] = ()

    @property
    def correct(self) -> bool:
        if self.case.expect == {CLARIFY}:
            return self.got == CLARIFY and self.case.concept in (None, self.concept)
        return self.got in self.case.expect


@dataclass
class Metrics:
    """The figures for one system on one set of cases."""

    n: int
    overall: float
    accuracy_at_1: float
    mrr: float
    clarify_precision: float
    clarify_recall: float
    fallback_precision: float
    fallback_recall: float
    misleading: float = 0.0  # cases answered confidently with an entry that is not an answer
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)
    confused: list[tuple[str, str, int]] = field(default_factory=list)

    def category_accuracy(self, category: str) -> float:
        right, n = self.by_category.get(category, (0, 0))
        return right / n if n else 0.0


# ---------------------------------------------------------------------- the development set


def load_cases(path: Path, training: bool = False) -> list[Case]:
    """Read the development set; within each section even positions calibrate, odd report.
    A training batch (training True) is all "train": it only teaches the judgement."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(data) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}")
    cases = []
    for category in CATEGORIES:
        for i, item in enumerate(data.get(category) or []):
            turns = tuple(str(t) for t in item.get("turns") or [item["q"]])
            expect = item.get("expect")
            if category == "ambiguous":
                expect = CLARIFY
            elif category == "out_of_scope":
                expect = FALLBACK
            elif expect is None and item.get("concept"):
                expect = CLARIFY
            if expect is None:
                raise ValueError(f"{path}: {category} case {turns[0]!r} has no expect")
            expect_set = frozenset([expect] if isinstance(expect, str) else map(str, expect))
            half = "train" if training else "calibrate" if i % 2 == 0 else "report"
            cases.append(Case(category, turns, expect_set, item.get("concept"), half))
    return cases


def select(cases: Iterable[Case], half: str) -> list[Case]:
    """Return the cases of one half ("calibrate", "report") or all of them."""
    if half not in HALVES:
        raise ValueError(f"unknown half {half!r}: use one of {', '.join(HALVES)}")
    return [c for c in cases if half == "all" or c.half == half]


def check_cases(cases: Sequence[Case], kb: KnowledgeBase,
                minimums: dict[str, int] = MINIMUMS) -> list[str]:
    """Return what is wrong with the set: unknown entries or concepts, sections too small."""
    problems = []
    concepts = {c.id for c in kb.concepts}
    for case in cases:
        for want in case.expect - {CLARIFY, FALLBACK}:
            if want not in kb.entries:
                problems.append(f"{case.category}: {case.text!r} expects unknown entry {want!r}")
        if case.concept and case.concept not in concepts:
            problems.append(f"{case.category}: {case.text!r} names unknown concept "
                            f"{case.concept!r}")
    sizes = Counter(c.category for c in cases)
    for category, least in minimums.items():
        if sizes[category] < least:
            problems.append(f"{category}: {sizes[category]} cases, at least {least} needed")
    return problems


# ---------------------------------------------------------------------- the systems


def run_engine(service: KnowledgeService, settings: Settings, cases: Sequence[Case],
               engine: Engine | None = None) -> list[Outcome]:
    """Put every case through a fresh conversation with the real engine."""
    engine = engine or Engine(service, SQLiteStore(":memory:"), settings)
    snap = service.current
    outcomes = []
    for i, case in enumerate(cases):
        key = ConversationKey("eval", "dev", str(i))
        reply = None
        for turn in case.turns:
            reply = engine.reply(key, turn)
        if reply is None:
            raise ValueError(f"case {i} has no turns")
        got = reply.entry.id if reply.kind == "answer" and reply.entry else reply.kind
        hits = snap.index.search(case.turns[0], top_k=10)
        ranking = [got] if reply.kind == "answer" else []
        ranking += [h.key for h in hits if h.key != got and h.key in snap.kb.entries]
        outcomes.append(Outcome(case, got, reply.concept, tuple(ranking)))
    return outcomes


def answerability_rows(service: KnowledgeService, settings: Settings, cases: Sequence[Case]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Run the engine without the learned judgement and record, for each case, the last
    decision it would have put to it: the features, and whether that entry is an answer."""
    engine = Engine(service, SQLiteStore(":memory:"), replace(settings,
                                                               learned_answerability=False))
    rows, labels = [], []
    for i, case in enumerate(cases):
        key = ConversationKey("train", "dev", str(i))
        for turn in case.turns:
            engine.trace = []
            engine.reply(key, turn)
        if engine.trace:
            entry, described = engine.trace[-1]
            rows.append(described)
            labels.append(1.0 if entry in case.expect else 0.0)
    engine.trace = None
    return np.array(rows), np.array(labels)


def train_answerability(service: KnowledgeService, settings: Settings, cases: Sequence[Case],
                        extra: Sequence[Case] = ()
                        ) -> tuple[answerability.Model, dict[str, int], int]:
    """Train the judgement on the calibration half and a training batch (extra); return it,
    its 5-fold confusion counts on those decisions, and how many decisions it learned from.
    The threshold is chosen on the calibration half alone, end to end."""
    calibration = select(cases, "calibrate")
    x, y = answerability_rows(service, settings, [*calibration, *extra])
    grid = [round(t, 2) for t in np.arange(0.2, 0.81, 0.05)]
    model = answerability.train(x, y, grid)
    # The threshold that serves best end to end on the calibration half. A misleading answer
    # (a wrong entry given with confidence) is the worst outcome for a seller, so it counts as
    # two wrong outcomes; ties go to more right answers.
    best = (-1.0, 0.0, model.threshold)
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65):
        engine = Engine(service, SQLiteStore(":memory:"), settings)
        engine.judge = replace(model, threshold=threshold)
        m = score(run_engine(service, settings, calibration, engine))
        best = max(best, (round(m.overall - m.misleading, 9), m.overall, threshold))
    model = replace(model, threshold=best[2])
    return model, answerability.cross_validate(x, y, 5, grid), len(y)


def channel_scores(snap: Snapshot, cases: Sequence[Case], channel: str
                   ) -> list[list[tuple[str, float]]]:
    """Score every entry for every case on one channel ("dense", "lexical" or "hybrid")."""
    if channel == "hybrid":
        return hybrid_scores(snap, cases)
    index = snap.index
    n = len(index.keys)
    rows: list[list[tuple[str, float]]] = []
    for case in cases:
        norm = snap.normalizer(" ".join(case.turns))
        if not norm:
            rows.append([])
            continue
        query = index.embed_query(norm)
        hits = index.search_normalised(norm, query, None, top_k=n)
        # The baselines are plain retrievers over the entries: known gaps are the bot's own.
        scored = [(h.key, h.dense if channel == "dense" else h.lexical) for h in hits
                  if h.key in snap.kb.entries]
        rows.append(sorted(scored, key=lambda kv: -kv[1]))
    return rows


def _has_jieba() -> bool:
    try:
        import jieba  # noqa: F401
    except ImportError:
        return False
    return True


RRF_C = 60


def hybrid_scores(snap: Snapshot, cases: Sequence[Case]) -> list[list[tuple[str, float]]]:
    """Score entries the way a Chatchat-style retriever does: jieba BM25 and dense, fused by
    weighted reciprocal rank (0.5/0.5, c=60), rescaled so 1.0 means first on both lists."""
    import jieba

    jieba.setLogLevel(60)  # jieba prints its dictionary loading to stderr
    keys = list(snap.kb.entries)
    docs = [jieba.lcut_for_search(" ".join((e.title, *e.questions, e.answer)).lower())
            for e in snap.kb.entries.values()]
    bm25 = _BM25(docs)
    dense_rows = channel_scores(snap, cases, "dense")
    rows = []
    for case, dense in zip(cases, dense_rows, strict=True):
        query = jieba.lcut_for_search(" ".join(case.turns).lower())
        lexical = sorted(zip(keys, bm25.scores(query), strict=True), key=lambda kv: -kv[1])
        fused: dict[str, float] = {}
        for ranked in (lexical, dense):
            for rank, (key, _) in enumerate(ranked, 1):
                fused[key] = fused.get(key, 0.0) + 0.5 / (RRF_C + rank)
        best = 1.0 / (RRF_C + 1)
        rows.append(sorted(((k, v / best) for k, v in fused.items()), key=lambda kv: -kv[1]))
    return rows


class _BM25:
    """Okapi BM25 over token lists (k1 1.5, b 0.75), as rank_bm25 computes it."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(d) for d in docs]
        self.lengths = np.array([len(d) for d in docs], dtype=float)
        self.avg = float(self.lengths.mean()) if len(docs) else 0.0
        df = Counter(t for d in self.tf for t in d)
        n = len(docs)
        self.idf = {t: float(np.log((n - f + 0.5) / (f + 0.5) + 1.0)) for t, f in df.items()}

    def scores(self, query: Sequence[str]) -> list[float]:
        out = np.zeros(len(self.tf))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / (self.avg or 1.0))
        for token in set(query):
            idf = self.idf.get(token)
            if idf is None:
                continue
            freq = np.array([tf.get(token, 0) for tf in self.tf], dtype=float)
            out += idf * freq * (self.k1 + 1) / (freq + norm)
        return [float(x) for x in out]


def baseline_outcomes(cases: Sequence[Case], scores: Sequence[Sequence[tuple[str, float]]],
                      threshold: float) -> list[Outcome]:
    """Answer each case with its top entry, or fall back when the top score is too low."""
    outcomes = []
    for case, ranked in zip(cases, scores, strict=True):
        top = ranked[0] if ranked else None
        got = top[0] if top and top[1] >= threshold else FALLBACK
        outcomes.append(Outcome(case, got, None, tuple(k for k, _ in ranked[:10])))
    return outcomes


def calibrate_baseline(cases: Sequence[Case], scores: Sequence[Sequence[tuple[str, float]]]
                       ) -> float:
    """Return the fallback threshold with the most correct outcomes on these cases."""
    grid = np.round(np.arange(0.0, 1.0001, 0.02), 2)
    return float(max(grid, key=lambda t: (sum(o.correct for o in
                                              baseline_outcomes(cases, scores, t)), -t)))


# ---------------------------------------------------------------------- the figures


def score(outcomes: Sequence[Outcome]) -> Metrics:
    """Compute accuracy, MRR, clarify and fallback precision/recall, per-category results."""
    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    answerable = [o for o in outcomes if o.case.category == "answerable"]
    ranked = [o for o in outcomes if o.case.wants_entry and len(o.case.turns) == 1]
    rr = [next((1.0 / r for r, key in enumerate(o.ranking, 1) if key in o.case.expect), 0.0)
          for o in ranked]
    said = {kind: [o for o in outcomes if o.got == kind] for kind in (CLARIFY, FALLBACK)}
    wanted = {kind: [o for o in outcomes if o.case.expect == {kind}]
              for kind in (CLARIFY, FALLBACK)}
    by_category = {}
    for category in CATEGORIES:
        mine = [o for o in outcomes if o.case.category == category]
        if mine:
            by_category[category] = (sum(o.correct for o in mine), len(mine))
    # A wrong entry given for an expected one: the pair, whichever way round.
    confused = Counter(tuple(sorted((min(o.case.expect), o.got))) for o in outcomes
                       if o.case.wants_entry and not o.correct and o.got not in
                       (CLARIFY, FALLBACK))
    return Metrics(
        n=len(outcomes),
        overall=ratio(sum(o.correct for o in outcomes), len(outcomes)),
        accuracy_at_1=ratio(sum(o.correct for o in answerable), len(answerable)),
        mrr=float(np.mean(rr)) if rr else 0.0,
        clarify_precision=ratio(sum(o.correct for o in said[CLARIFY]), len(said[CLARIFY])),
        clarify_recall=ratio(sum(o.correct for o in wanted[CLARIFY]), len(wanted[CLARIFY])),
        fallback_precision=ratio(sum(o.case.expect == {FALLBACK} for o in said[FALLBACK]),
                                 len(said[FALLBACK])),
        fallback_recall=ratio(sum(o.correct for o in wanted[FALLBACK]),
                              len(wanted[FALLBACK])),
        misleading=ratio(sum(o.got not in (CLARIFY, FALLBACK) and o.got not in o.case.expect
                             for o in outcomes), len(outcomes)),
        by_category=by_category,
        confused=[(a, b, n) for (a, b), n in confused.most_common(8)],
    )


@dataclass
class Evaluation:
    """The three systems' figures on one half, and the thresholds they used."""

    half: str
    systems: dict[str, Metrics]
    thresholds: dict[str, object]
    misses: list[Outcome]


def evaluate(service: KnowledgeService, settings: Settings, cases: Sequence[Case],
             half: str = "report") -> Evaluation:
    """Run the bot and both baselines; baselines calibrate on the calibration half."""
    chosen = select(cases, half)
    calibration = select(cases, "calibrate")
    snap = service.current
    full = run_engine(service, settings, chosen)
    systems = {"full": score(full)}
    thresholds: dict[str, object] = {"full": settings.thresholds}
    for channel in ("lexical", "dense", "hybrid"):
        if channel == "hybrid" and not _has_jieba():
            continue
        threshold = calibrate_baseline(calibration, channel_scores(snap, calibration, channel))
        outcomes = baseline_outcomes(chosen, channel_scores(snap, chosen, channel), threshold)
        systems[channel] = score(outcomes)
        thresholds[channel] = threshold
    return Evaluation(half, systems, thresholds, [o for o in full if not o.correct])


def evaluate_batch(service: KnowledgeService, settings: Settings, cases: Sequence[Case]
                   ) -> Evaluation:
    """Score the bot alone on a batch of labelled cases, all of them (a new batch before
    anything is changed for it, or a training batch); no baseline is calibrated on it."""
    full = run_engine(service, settings, cases)
    return Evaluation("batch", {"full": score(full)}, {"full": settings.thresholds},
                      [o for o in full if not o.correct])


def sweep(service: KnowledgeService, settings: Settings, cases: Sequence[Case],
          grid: Iterable[Thresholds]) -> list[tuple[Thresholds, Metrics]]:
    """Score the engine on the calibration half for each thresholds triple, best first."""
    calibration = select(cases, "calibrate")
    rows = []
    for thresholds in grid:
        outcomes = run_engine(service, replace(settings, thresholds=thresholds), calibration)
        rows.append((thresholds, score(outcomes)))
    return sorted(rows, key=lambda r: (-r[1].overall, -r[1].fallback_precision,
                                       -r[1].clarify_precision))


def default_grid(base: Thresholds) -> list[Thresholds]:
    """Return the thresholds sweep: answer threshold, margin and decisive gap."""
    return [replace(base, answer=a, margin=m, decisive=d) for a, m, d in itertools.product(
        (0.35, 0.38, 0.41, 0.44, 0.47), (0.0, 0.02), (0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 1.0))]


# ---------------------------------------------------------------------- the report


def _describe(threshold: object) -> str:
    if isinstance(threshold, Thresholds):
        return (f"answer {threshold.answer:.2f}, margin {threshold.margin:.2f}, "
                f"decisive {threshold.decisive:.2f}")
    return f"fallback below {threshold:.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_report(result: Evaluation) -> str:
    """Lay the figures out as plain-text tables, the three systems side by side."""
    names = list(result.systems)
    systems = [result.systems[n] for n in names]
    calibrated = ("" if result.half == "batch" else
                  "; thresholds and baselines calibrated on the calibrate half")
    lines = [f"half: {result.half}  ({systems[0].n} cases{calibrated})", ""]
    header = f"{'':26}" + "".join(f"{n:>10}" for n in names)
    lines.append(header)
    rows: list[tuple[str, Callable[[Metrics], str]]] = [
        ("overall correct", lambda m: _pct(m.overall)),
        ("answer accuracy@1", lambda m: _pct(m.accuracy_at_1)),
        ("answer MRR", lambda m: f"{m.mrr:6.3f}"),
        ("clarify precision", lambda m: _pct(m.clarify_precision)),
        ("clarify recall", lambda m: _pct(m.clarify_recall)),
        ("fallback precision", lambda m: _pct(m.fallback_precision)),
        ("fallback recall", lambda m: _pct(m.fallback_recall)),
        ("misleading answers", lambda m: _pct(m.misleading)),
    ]
    for label, cell in rows:
        lines.append(f"{label:26}" + "".join(f"{cell(m):>10}" for m in systems))
    lines += ["", f"{'category':26}" + "".join(f"{n:>10}" for n in names)]
    for category in CATEGORIES:
        if category not in systems[0].by_category:
            continue
        n = systems[0].by_category[category][1]
        cells = "".join(f"{_pct(m.category_accuracy(category)):>10}" for m in systems)
        lines.append(f"{category + f' ({n})':26}{cells}")
    lines += ["", "thresholds: " + "; ".join(f"{k} {_describe(v)}"
                                           for k, v in result.thresholds.items())]
    for name, metrics in zip(names, systems, strict=True):
        if metrics.confused:
            pairs = ", ".join(f"{a} ~ {b} ({n})" for a, b, n in metrics.confused[:5])
            lines.append(f"most confused ({name}): {pairs}")
    if result.misses:
        lines += ["", "full system misses:"]
        for o in result.misses:
            want = "|".join(sorted(o.case.expect))
            got = o.got if o.got != CLARIFY else f"clarify:{o.concept}"
            lines.append(f"  [{o.case.category}] {o.case.text}  want {want}  got {got}")
    return "\n".join(lines)
