"""The dialogue engine: one user message plus the conversation's state in, one reply out.

It knows no platform: channels hand it a ConversationKey and the text, and render the Reply.
It is synchronous and does no I/O but the store; channels call it off their event loop.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bot.dialogue.replies import NONE_OF_THESE, Option, Reply
from bot.kb.loader import Concept, Entry, Sense
from bot.kb.service import KnowledgeService, Snapshot
from bot.settings import Settings
from bot.store.sqlite import Conversation, Pending, Store, Unanswered
from index.normalize import contains_any, contains_which, has_meaning, strip_control
from index.search import Hit

log = logging.getLogger(__name__)

NONE_LABEL = "都不是"
_NONE_WORDS = {"都不是", "都不对", "以上都不是", "都没有", "不是", "none", "neither",
               "none of these", "none of them"}
_CN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}
_PICK = re.compile(r"^(?:第|选|选择)?\s*(\d{1,2}|[一二三四五六七八九十])\s*(?:个|项|条|号|\.|、)?$")
_EDGE_PUNCT = " \t\r\n。，,.!！?？~～:：;；\"'“”‘’()（）[]【】"


class ConversationKey(NamedTuple):
    """Who is talking where: conversations never mix across channels, chats or users."""

    channel: str
    chat: str
    user: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat}:{self.user}"


@dataclass(frozen=True)
class _ConceptView:
    """A concept with its terms and cue words in normalised form."""

    concept: Concept
    terms: tuple[str, ...]
    cues: tuple[tuple[Sense, tuple[str, ...]], ...]
    general_cues: tuple[str, ...]

    def settle(self, text: str) -> Sense | None:
        """Return the sense whose cue words the text uses most, if exactly one leads."""
        counts = [(sum(1 for c in cues if _affirms(text, c)), sense) for sense, cues in self.cues]
        best = max((n for n, _ in counts), default=0)
        leaders = [sense for n, sense in counts if n == best]
        return leaders[0] if best > 0 and len(leaders) == 1 else None


@dataclass(frozen=True)
class _Scope:
    """What lies outside the knowledge, normalised for one snapshot."""

    snap: Snapshot | None
    platforms: tuple[str, ...]
    declined: tuple[str, ...]
    entry_texts: dict[str, str]


class Engine:
    """Turn messages into answers, clarifying questions or honest fallbacks."""

    def __init__(self, service: KnowledgeService, store: Store, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = store
        self.settings = settings
        self.clock = clock
        self._views: tuple[Snapshot | None, list[_ConceptView]] = (None, [])
        self._scope = _Scope(None, (), (), {})
        # One lock per live conversation: its state is read, changed and written back whole,
        # so two messages from one user handled on two threads must take turns.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary())
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ entry point

    def reply(self, key: ConversationKey, text: str) -> Reply:
        """Reply to one message in the conversation named by key; safe to call from threads."""
        with self._lock_for(key), self.store.conversation_lock(str(key)):
            return self._reply(key, text)

    def choose(self, key: ConversationKey, option_id: str) -> Reply | None:
        """Apply a pick made with a button; None when that option is no longer on offer."""
        with self._lock_for(key), self.store.conversation_lock(str(key)):
            now = self.clock()
            snap = self.service.current
            conv = self.store.load_conversation(str(key), now)
            pending = self._live_pending(conv, now)
            if pending is None:
                return None
            option = next((o for o in pending.options if o.id == option_id), None)
            if option is None:
                return None
            conv.pending = None
            lang = _language(pending.question)
            reply = self._resolve(key, pending, option, snap, now, lang, conv)
            return self._finish(key, conv, now, reply)

    def _live_pending(self, conv: Conversation, now: float) -> Pending | None:
        """Return the conversation's pending question, dropping it if it has expired."""
        if conv.pending and now - conv.pending.asked_at > self.settings.pending_ttl:
            conv.pending = None
        return conv.pending

    def _lock_for(self, key: ConversationKey) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(str(key))
            if lock is None:
                lock = self._locks[str(key)] = threading.Lock()
        return lock

    def _reply(self, key: ConversationKey, text: str) -> Reply:
        now = self.clock()
        snap = self.service.current
        lang = _language(text)
        text = strip_control(text)
        if not text:
            return self._finish(key, None, now, _notice("empty", snap, lang))
        if len(text) > self.settings.max_message_chars:
            reply = _notice("too_long", snap, lang, chars=len(text),
                            limit=self.settings.max_message_chars)
            return self._finish(key, None, now, reply)
        if not has_meaning(text):
            return self._finish(key, None, now, _notice("no_text", snap, lang))
        conv = self.store.load_conversation(str(key), now)
        pending = self._live_pending(conv, now)
        if pending:
            option = pick_option(pending.options, text, snap.normalizer)
            if option is not None:
                conv.pending = None
                return self._finish(key, conv, now, self._resolve(key, pending, option, snap,
                                                                   now, lang, conv))
        conv.pending = None  # a new question replaces whatever was pending
        return self._finish(key, conv, now, self._ask(key, conv, text, snap, now, lang))

    # ------------------------------------------------------------------ a new question

    def _ask(self, key: ConversationKey, conv: Conversation, text: str, snap: Snapshot,
             now: float, lang: str) -> Reply:
        norm = snap.normalizer(text)
        earlier = " ".join(conv.history[-self.settings.history_turns:])
        conv.history = [*conv.history, norm][-self.settings.history_turns:]
        if contains_any(norm, self._scope_words(snap).declined):
            return Reply("fallback", reason="declined", lang=lang, message=_ui(lang, "declined"))
        query = snap.index.embed_query(norm)
        hits = snap.index.search_normalised(norm, query, None, top_k=5)
        th = self.settings.thresholds

        # A question about another platform is out of scope unless the best entry speaks of
        # that platform too ("小红书和京东合作了吗" is ours; "抖音小店保证金" is not).
        named = contains_which(norm, self._scope_words(snap).platforms)
        if named and not (hits and contains_which(self._entry_text(snap, hits[0].key), named)):
            return Reply("fallback", reason="other_platform", lang=lang,
                         message=_ui(lang, "other_platform", platforms="、".join(named)))

        for view in self._concept_views(snap):
            if not contains_any(norm, view.terms):
                continue
            sense = view.settle(norm) or view.settle(earlier)
            if sense is None:
                top = hits[0] if hits else None
                # A question about the term itself ("个体店是什么意思") has an answer of its own.
                if (top and top.key in view.concept.general and self._trusted(top)
                        and contains_any(norm, view.general_cues)):
                    return self._answer(snap, top, text, conv, now, lang)
                # So does one whose other words single out one sense ("导流新规几号执行"): asking
                # which sense is meant is pointless when no other sense comes close.
                if (top and self._trusted(top)
                        and self._sense_gap(view, snap, top, norm, query) >= th.decisive):
                    return self._answer(snap, top, text, conv, now, lang)
                return self._clarify_concept(view.concept, text, conv, now, lang)
            in_sense = snap.index.search_normalised(norm, query, set(sense.entries), top_k=1)
            if in_sense and in_sense[0].score >= th.sense_floor:
                return self._answer(snap, in_sense[0], text, conv, now, lang)

        if not hits or not self._trusted(hits[0]):
            return self._not_covered(key, text, hits, snap, conv, now, lang)
        close = [h for h in hits[1:3] if hits[0].score - h.score < th.margin
                 and h.score >= th.answer]
        if close:
            options = [_entry_option(snap.kb.entries[h.key]) for h in (hits[0], *close)]
            return self._clarify(options, "candidates", None, text, conv, now, lang,
                                 hits[0].score)
        return self._answer(snap, hits[0], text, conv, now, lang)

    # ------------------------------------------------------------------ a pick

    def _resolve(self, key: ConversationKey, pending: Pending, option: Option, snap: Snapshot,
                 now: float, lang: str, conv: Conversation) -> Reply:
        if option.id == NONE_OF_THESE:
            self._log_unanswered(key, pending.question, now)
            nearest = self._nearest(snap, pending.question, exclude={o.id for o in
                                                                     pending.options})
            return Reply("fallback", reason="none_of_these", options=nearest,
                         message=_ui(lang, "none_of_these"), lang=lang)
        if pending.kind == "concept":
            concept = next((c for c in snap.kb.concepts if c.id == pending.concept), None)
            sense = next((s for s in concept.senses if _sense_id(concept, s) == option.id),
                         None) if concept else None
            if sense is not None:
                # Remember the choice: later questions in this conversation use its sense.
                conv.history = [*conv.history, snap.normalizer(sense.label)]
                hits = snap.index.search(pending.question, set(sense.entries), top_k=1)
                if hits:
                    return self._answer(snap, hits[0], pending.question, conv, now, lang)
        entry = snap.kb.entries.get(option.id)
        if entry is not None:
            return self._answer(snap, Hit(entry.id, 1.0, 1.0, 1.0), pending.question, conv,
                                now, lang)
        # The knowledge was reloaded and the option is gone: treat it as a new question.
        return self._ask(key, conv, pending.question, snap, now, lang)

    # ------------------------------------------------------------------ reply builders

    def _answer(self, snap: Snapshot, hit: Hit, question: str, conv: Conversation, now: float,
                lang: str) -> Reply:
        entry = snap.kb.entries[hit.key]
        related = tuple(_entry_option(snap.kb.entries[r]) for r in entry.related[:3]
                        if r in snap.kb.entries)
        if related:
            conv.pending = Pending("suggest", question, list(related), None, now)
        return Reply("answer", score=hit.score, entry=entry, options=related,
                     lang=lang)

    def _clarify_concept(self, concept: Concept, question: str, conv: Conversation, now: float,
                         lang: str) -> Reply:
        options = [Option(_sense_id(concept, s), s.label) for s in concept.senses]
        return self._clarify(options, "concept", concept, question, conv, now, lang, 0.0)

    def _clarify(self, options: list[Option], kind: str, concept: Concept | None, question: str,
                 conv: Conversation, now: float, lang: str, score: float) -> Reply:
        options = [*options, Option(NONE_OF_THESE, NONE_LABEL)]
        conv.pending = Pending(kind, question, options, concept.id if concept else None, now)
        message = concept.question if concept else _ui(lang, "which_one")
        return Reply("clarify", score=score, message=message, options=tuple(options),
                     lang=lang, concept=concept.id if concept else None)

    def _not_covered(self, key: ConversationKey, text: str, hits: list[Hit], snap: Snapshot,
                     conv: Conversation, now: float, lang: str) -> Reply:
        self._log_unanswered(key, text, now)
        floor = self.settings.thresholds.suggest_floor
        nearest = tuple(_entry_option(snap.kb.entries[h.key]) for h in hits[:3]
                        if h.score >= floor)
        if nearest:
            conv.pending = Pending("suggest", text, list(nearest), None, now)
        return Reply("fallback", score=hits[0].score if hits else 0.0, reason="not_covered",
                     message=_ui(lang, "not_covered"), options=nearest, lang=lang)

    def _nearest(self, snap: Snapshot, question: str, exclude: set[str]) -> tuple[Option, ...]:
        hits = snap.index.search(question, top_k=6)
        floor = self.settings.thresholds.suggest_floor
        picks = [h for h in hits if h.key not in exclude and h.score >= floor][:3]
        return tuple(_entry_option(snap.kb.entries[h.key]) for h in picks)

    # ------------------------------------------------------------------ bookkeeping

    def _finish(self, key: ConversationKey, conv: Conversation | None, now: float,
                reply: Reply) -> Reply:
        if conv is not None:
            self.store.save_conversation(str(key), conv, now + self.settings.pending_ttl)
        self.store.log_reply(now, key.channel, reply.kind, reply.entry_id, reply.score)
        return reply

    def _log_unanswered(self, key: ConversationKey, text: str, now: float) -> None:
        self.store.log_unanswered(Unanswered(now, key.channel, key.chat, key.user, text))

    def _scope_words(self, snap: Snapshot) -> _Scope:
        if self._scope.snap is not snap:
            n = snap.normalizer
            self._scope = _Scope(snap, tuple(w for w in map(n, snap.kb.other_platforms) if w),
                                 tuple(w for w in map(n, snap.kb.declined_requests) if w), {})
        return self._scope

    def _entry_text(self, snap: Snapshot, key: str) -> str:
        """Return an entry's title, questions and answer, normalised (memoised per snapshot)."""
        texts = self._scope_words(snap).entry_texts
        if key not in texts:
            entry = snap.kb.entries[key]
            texts[key] = snap.normalizer(" ".join((entry.title, *entry.questions, entry.answer)))
        return texts[key]

    def _trusted(self, hit: Hit) -> bool:
        """Tell whether a hit may be the answer: a high enough score, with some likeness in
        meaning (a bare word match such as "2" against "2 万" is no evidence on its own)."""
        return hit.score >= self.settings.thresholds.answer and hit.dense > 0.0

    def _sense_gap(self, view: _ConceptView, snap: Snapshot, top: Hit, norm: str,
                   query: np.ndarray) -> float:
        """Return how far the best hit leads the best entry of any other sense.

        Only senses compete: when the best entry belongs to no sense at all, the term is
        incidental to the question ("投流时直客老催我加钱" is about 直客) unless some sense's
        entry comes close.
        """
        rivals = {key for sense, _ in view.cues if top.key not in sense.entries
                  for key in sense.entries}
        rival = snap.index.search_normalised(norm, query, rivals, top_k=1) if rivals else []
        return top.score - (rival[0].score if rival else 0.0)

    def _concept_views(self, snap: Snapshot) -> list[_ConceptView]:
        if self._views[0] is not snap:
            n = snap.normalizer
            views = [
                _ConceptView(c, tuple(n(t) for t in c.terms),
                             tuple((s, tuple(n(cue) for cue in s.cues)) for s in c.senses),
                             tuple(n(cue) for cue in c.general_cues))
                for c in snap.kb.concepts
            ]
            self._views = (snap, views)
        return self._views[1]


# ---------------------------------------------------------------------- helpers


def pick_option(options: Sequence[Option], text: str,
                normalize: Callable[[str], str]) -> Option | None:
    """Return the option text picks: by number (1, ２, 第2个, 二), by id, or by label."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    match = _PICK.match(raw)
    if match:
        token = match.group(1)
        number = int(token) if token.isdigit() else _CN_DIGITS[token]
        return options[number - 1] if 1 <= number <= len(options) else None
    for option in options:
        if raw == option.id.lower():
            return option
    wanted = normalize(raw).strip(_EDGE_PUNCT)
    for option in options:
        if wanted and wanted == normalize(option.label).strip(_EDGE_PUNCT):
            return option
    if raw in _NONE_WORDS:
        return next((o for o in options if o.id == NONE_OF_THESE), None)
    return None


_NEGATIONS = "不没别非无未"


def _affirms(text: str, cue: str) -> bool:
    """Tell whether text uses cue other than negated ("不违规" does not say "违规")."""
    start = text.find(cue) if cue else -1
    while start >= 0:
        if start == 0 or text[start - 1] not in _NEGATIONS:
            return True
        start = text.find(cue, start + 1)
    return False


def _sense_id(concept: Concept, sense: Sense) -> str:
    """Return the option id of one sense of a concept (short: it travels in button data)."""
    return f"{concept.id}.{sense.id}"


def _entry_option(entry: Entry) -> Option:
    return Option(entry.id, entry.title)


def _language(text: str) -> str:
    """Return "en" for a message written in Latin letters without Chinese, else "zh"."""
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "en" if latin >= 3 and han == 0 else "zh"


_UI = {
    "zh": {
        "which_one": "你问的是下面哪一个？",
        "not_covered": "抱歉，知识库里还没有能可靠回答这个问题的内容，我不想猜。这个问题已记录，"
                       "维护者会补充。",
        "none_of_these": "好的，那我暂时回答不了，这个问题已记录，维护者会补充。",
        "declined": "我只回答小红书平台规则和政策方面的问题，不代写文案、标题，也不做翻译。",
        "other_platform": "我只回答小红书的平台规则和政策问题，{platforms}的规则不在我的知识"
                          "范围内，请以该平台的官方说明为准。",
        "empty": "请直接发送你的问题，例如：{examples}",
        "no_text": "没有看到文字内容。请用文字描述你的问题，例如：{examples}",
        "too_long": "你的消息有 {chars} 字，超过了 {limit} 字的上限。请用一两句话说清你想问的"
                    "问题，例如：{examples}",
    },
    "en": {
        "which_one": "Which of these do you mean?",
        "not_covered": "Sorry, the knowledge base has nothing I can answer this from reliably, "
                       "and I won't guess. The question has been logged for the maintainers.",
        "none_of_these": "All right, I can't answer that yet; the question has been logged.",
        "declined": "I only answer questions about Xiaohongshu's platform rules and policies; "
                    "I don't write copy, titles or translations.",
        "other_platform": "I only answer questions about Xiaohongshu's platform rules; "
                          "{platforms} is outside what I know. Please check that platform's "
                          "official help.",
        "empty": "Please send your question, for example: {examples}",
        "no_text": "I see no words in that message. Please type your question, for example: "
                   "{examples}",
        "too_long": "Your message has {chars} characters, more than the {limit} I accept. "
                    "Please ask in a sentence or two, for example: {examples}",
    },
}


def _ui(lang: str, key: str, **values: object) -> str:
    return _UI.get(lang, _UI["zh"])[key].format(**values)


def _notice(reason: str, snap: Snapshot, lang: str, **values: object) -> Reply:
    """Build the fallback for a message that is not a question at all (empty, too long...)."""
    # The terms sellers most often misunderstand make the best examples.
    general = [c.general[0] for c in snap.kb.concepts if c.general]
    keys = general[:3] or list(snap.kb.entries)[:3]
    titles = [snap.kb.entries[k].title for k in keys]
    examples = "；".join(titles) if lang == "zh" else "; ".join(titles)
    message = _ui(lang, reason, examples=examples, **values)
    return Reply("fallback", reason=reason, message=message, lang=lang)
