"""The dialogue engine: one user message plus the conversation's state in, one reply out.

It knows no platform: channels hand it a ConversationKey and the text, and render the Reply.
It is synchronous and does no I/O but the store; channels call it off their event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from bot.copy import say
from bot.dialogue.answerability import Model, Vocabulary, features, terms
from bot.dialogue.replies import NONE_OF_THESE, Option, Reply
from bot.dialogue.senses import (
    LONG_MESSAGE,
    ConceptView,
    asks,
    asks_about_past,
    clauses,
    entry_option,
    follow_up_subject,
    is_follow_up,
    is_short,
    language,
    looks_like_pick,
    other_sense,
    pick_option,
    sense_id,
    years,
)
from bot.kb.freshness import judge
from bot.kb.loader import Concept, Entry
from bot.kb.service import KnowledgeService, Snapshot
from bot.settings import Settings
from bot.store.base import Conversation, DialogueStore, Pending, Unanswered
from index.normalize import contains_any, contains_which, has_meaning, strip_control
from index.search import Hit

log = logging.getLogger(__name__)

SHOWN = 20  # answered entries a conversation remembers, for feedback on them
LAST_QUESTION_CHARS = 120  # how much of the last question a follow-up inherits
ASKING_BONUS = 0.05  # a clause that asks something is more likely the question
LEANING_CHARS = 8  # a message this short with no term of its own leans on the last answer
CANDIDATES = 10  # entries ranked before follow-ups and past questions reorder them
# How far down the two questions' joint ranking an aspect follow-up may look (see _on_subject).
ASPECT_REACH = 3
PAST_BONUS = 0.08  # what speaking of the past adds to an entry's score for a past question
# What naming the year asked about adds to an entry's score (and naming only other years takes).
YEAR_BONUS = 0.08
# How well a follow-up's own words must match the entry it is answered with (see _relates).
FOLLOW_UP_FLOOR = 0.15
# The longest message that finds nothing on its own yet may be read as one more ask about the
# last answer (see _in_context); a longer one says enough to stand alone.
CONTEXT_CHARS = 20
# Right after an answer, a short message whose best entry leads the entry just given by less
# than this is taken as going on with that entry.
CONTEXT_TIE = 0.03
# How far an entry outside an ambiguous term's concept must lead the settled sense's best entry
# for the term to count as named in passing.
INCIDENTAL_LEAD = 0.15


class ConversationKey(NamedTuple):
    """Who is talking where: conversations never mix across channels, chats or users."""

    channel: str
    chat: str
    user: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.chat}:{self.user}"


@dataclass
class Turn:
    """One message being answered: who, what, against which knowledge, and when."""

    key: ConversationKey
    text: str
    snap: Snapshot
    now: float
    lang: str
    conv: Conversation = field(default_factory=Conversation)
    loaded: bool = False  # conv was read from the store, so it is written back
    norm: str = ""
    subject: str = ""  # the new subject a follow-up names ("那京东的呢" → "京东")
    aspect: str = ""  # or what else it asks of the same subject ("多少钱")
    swapped: str = ""  # the last question with its term replaced by the follow-up's
    names_us: bool = False  # the message itself names 小红书 (not a follow-up's earlier turn)

    def say(self, key: str, **values: object) -> str:
        return say(self.lang, key, **values)


@dataclass(frozen=True)
class _Scope:
    """The knowledge's scope words and concepts, normalised once per snapshot."""

    snap: Snapshot
    ours: tuple[str, ...]  # this platform's names, aliases expanded but not dropped
    platforms: dict[str, str]  # other platforms: normalised → as the knowledge writes it
    declined: tuple[str, ...]
    greetings: frozenset[str]
    thanks: frozenset[str]
    chitchat: tuple[str, ...]
    views: tuple[ConceptView, ...]
    entry_texts: dict[str, str]
    # Entries that speak of other platforms in general (站外, 其他平台): where users are sent.
    about_other_platforms: frozenset[str]
    vocabulary: Vocabulary
    past: frozenset[str]  # entries whose title or questions ask how things were
    years: dict[str, frozenset[str]]  # the years each entry's title or questions name
    # Terms that can stand for one another in a follow-up, longest first: the platform's
    # own (薯条, 聚光, 个体店…) and other platforms (淘宝, 京东…).
    term_families: tuple[tuple[str, ...], ...]

    def speaks_of(self, key: str, platforms: Iterable[str]) -> bool:
        """Tell whether an entry speaks of one of the platforms, or of other platforms at all."""
        return key in self.about_other_platforms or bool(
            contains_which(self.entry_texts[key], platforms))


class Engine:
    """Turn messages into answers, clarifying questions or honest fallbacks."""

    def __init__(self, service: KnowledgeService, store: DialogueStore,
                 settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = store
        self.settings = settings
        self.clock = clock
        self._scope: _Scope | None = None
        self.judge: Model | None = Model.load() if settings.learned_answerability else None
        # Training the judgement records what it is asked: (entry, features) per decision.
        self.trace: list[tuple[str, np.ndarray]] | None = None
        # One lock per live conversation: its state is read, changed and written back whole,
        # so two messages from one user handled on two threads must take turns.
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary())
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ entry points

    def reply(self, key: ConversationKey, text: str) -> Reply:
        """Reply to one message in the conversation named by key; safe to call from threads."""
        with self._lock_for(key), self.store.conversation_lock(str(key)):
            turn = Turn(key, strip_control(text), self.service.current, self.clock(),
                        language(text))
            return self._finish(turn, self._reply(turn))

    def choose(self, key: ConversationKey, option_id: str) -> Reply | None:
        """Apply a pick made with a button; None when that option is no longer on offer."""
        with self._lock_for(key), self.store.conversation_lock(str(key)):
            turn = Turn(key, "", self.service.current, self.clock(), "zh")
            self._load(turn)
            pending = self._live_pending(turn)
            option = next((o for o in pending.options if o.id == option_id),
                          None) if pending else None
            if pending is None or option is None:
                return None
            turn.conv.pending = None
            turn.lang = language(pending.question)
            return self._finish(turn, self._resolve(turn, pending, option))

    # ------------------------------------------------------------------ a message

    def _reply(self, turn: Turn) -> Reply:
        if not turn.text:
            return self._notice(turn, "empty")
        if len(turn.text) > self.settings.max_message_chars:
            return self._notice(turn, "too_long", chars=len(turn.text),
                                limit=self.settings.max_message_chars)
        self._load(turn)
        pending = self._live_pending(turn)
        if not has_meaning(turn.text) or looks_like_pick(turn.text):
            # "??" or "2" has no language of its own: keep the conversation's.
            turn.lang = self._conversation_language(turn)
        if not has_meaning(turn.text):
            return self._notice(turn, "no_text")
        turn.names_us = contains_any(turn.snap.normalizer.expand(turn.text),
                                     self._scope_of(turn.snap).ours)
        if pending:
            option = (pick_option(pending.options, turn.text, turn.snap.normalizer)
                      or self._sense_named(turn, pending))
            which = other_sense(turn.text)
            if option is None and which is not None and pending.kind == "concept":
                if not which:
                    # "那另一种呢" while nothing has been picked: there is no "other" yet.
                    return Reply("clarify", message=turn.say("which_one"),
                                 options=tuple(pending.options), lang=turn.lang,
                                 concept=pending.concept)
                # "第二种呢" while the senses are on offer picks the second.
                option = pending.options[which - 1] if which < len(pending.options) else None
            if option is not None:
                turn.conv.pending = None
                return self._resolve(turn, pending, option)
            if looks_like_pick(turn.text):
                # "4" when three are on offer: say which numbers there are, keep the offer.
                return Reply("clarify", message=turn.say("pick_in_range",
                                                         count=len(pending.options)),
                             options=tuple(pending.options), lang=turn.lang,
                             concept=pending.concept)
        turn.conv.pending = None  # a new question replaces whatever was pending
        which = other_sense(turn.text)
        if which is not None and turn.conv.last_sense:
            reply = self._other_sense(turn, which)
            if reply is not None:
                return reply
        if looks_like_pick(turn.text):
            # A number with nothing on offer picks nothing: it is no question to look up.
            return Reply("fallback", reason="stale_pick", lang=turn.lang,
                         message=turn.say("question_expired"))
        if turn.conv.last_question and (is_follow_up(turn.text) or self._leans_on_last(turn)):
            # "要多久" asks more of the previous question's subject; "那京东的呢" keeps the
            # question and changes its subject.
            turn.subject = follow_up_subject(turn.text)
            # "薯条是什么" then "那聚光呢" asks "聚光是什么": one term stands for another.
            turn.swapped = self._swap_subject(turn) if turn.subject else ""
            turn.aspect = "" if turn.subject else turn.text
            turn.text = f"{turn.conv.last_question} {turn.text}"
        elif len(turn.text) >= LONG_MESSAGE:
            turn.text = self._focus(turn)
        return self._ask(turn)

    def _focus(self, turn: Turn) -> str:
        """Find the question inside a long message: the clause the knowledge matches best,
        preferring ones that ask something, or that clause with a neighbour, if it beats the
        whole message; the whole stands when it finds a trusted entry on its own."""
        index, normalizer = turn.snap.index, turn.snap.normalizer
        whole_hits = index.search(turn.text, top_k=2)
        whole = whole_hits[0].score if whole_hits else 0.0
        parts = [(c, normalizer(c)) for c in clauses(turn.text)]
        parts = [(c, norm) for c, norm in parts if norm]
        if (not parts or whole >= self.settings.thresholds.answer
                or self._trusted(replace(turn, norm=normalizer(turn.text)), whole_hits,
                                 record=False)):
            # The whole message already finds its entry: its story helps, not hurts.
            return turn.text

        def scored(spans: list[tuple[str, str]]) -> list[tuple[float, str]]:
            vectors = index.embed_queries([norm for _, norm in spans])
            out = []
            for (span, norm), vector in zip(spans, vectors, strict=True):
                hits = index.search_normalised(norm, vector, None, top_k=1)
                bonus = ASKING_BONUS if asks(span) else 0.0
                out.append(((hits[0].score if hits else 0.0) + bonus, span))
            return out

        # Clauses first; then only the best clause joined with each neighbour, so a long
        # message costs two short encodes more than its clauses, not one per pair.
        ranked = scored(parts)
        best = max(range(len(ranked)), key=lambda i: ranked[i][0])
        pairs = [(parts[i][0] + parts[j][0], normalizer(parts[i][0] + parts[j][0]))
                 for i, j in ((best - 1, best), (best, best + 1)) if i >= 0 and j < len(parts)]
        score, span = max(ranked + scored(pairs), key=lambda x: x[0])
        return span if score > whole else turn.text

    def _sense_named(self, turn: Turn, pending: Pending) -> Option | None:
        """Take a short reply to "which 个体店 do you mean?" that names a sense by its cue words
        ("就普通号") as picking that sense."""
        if pending.kind != "concept" or not is_short(turn.text):
            return None
        view = next((v for v in self._scope_of(turn.snap).views
                     if v.concept.id == pending.concept), None)
        sense = view.settle(turn.snap.normalizer(turn.text)) if view else None
        if view is None or sense is None:
            return None
        return next((o for o in pending.options if o.id == sense_id(view.concept, sense)), None)

    def _on_subject(self, turn: Turn, query: np.ndarray) -> list[Hit]:
        """Rank entries for a follow-up by how well they match the previous question and the
        follow-up's own words together: the new subject ("那聚光呢" after a question on 薯条's
        goals) or the other side asked of the same one ("多少钱" after one on the materials
        for certification). After a new subject, the entry just answered stays only if its
        text speaks of that subject. When the follow-up's term stands for one in the previous
        question, the swapped question ("聚光是什么") takes the place of the two together
        ("薯条是什么 那聚光呢"), which names both terms and so favours an entry comparing them."""
        snap = turn.snap
        index = snap.index
        subject = snap.normalizer(turn.subject or turn.aspect)
        n = len(index.keys)
        together = (index.search(turn.swapped, top_k=n) if turn.swapped
                    else index.search_normalised(turn.norm, query, None, top_k=n))
        alone = {h.key: h for h in index.search(subject, top_k=n)} if subject else {}
        previous = turn.conv.shown[-1] if turn.conv.shown else None
        if previous and turn.subject and not self._speaks_of(snap, previous, subject):
            together = [h for h in together if h.key != previous]
        others = [alone] if alone else []
        if not others:
            return together[:CANDIDATES]
        # The queries weigh alike: the scores stay on the scale the thresholds expect.
        k = 1 + len(others)
        mixed = [Hit(h.key, (h.score + sum(o[h.key].score for o in others)) / k,
                     (h.dense + sum(o[h.key].dense for o in others)) / k,
                     (h.lexical + sum(o[h.key].lexical for o in others)) / k) for h in together]
        if turn.aspect and previous in snap.kb.entries:
            # "how long does it take?" alone finds whatever entry has a duration (a note
            # appeal's); asked of the same subject, the answer is the entry just given, one
            # of its related entries, or one the two questions together lead to.
            near = {previous, *snap.kb.entries[previous].related,
                    *(h.key for h in together[:ASPECT_REACH])}
            mixed = [h for h in mixed if h.key in near]
        ranked = sorted(mixed, key=lambda h: -h.score)[:CANDIDATES]
        if (previous and turn.subject and not turn.swapped and ranked
                and ranked[0].key not in snap.kb.gaps and not years(subject)
                and not self._names_term(snap, subject)
                and self._speaks_of(snap, previous, subject)):
            # "笔记呢" after when links first went into live rooms, "账号呢" after the notes a
            # campaign removed: a subject that is no term of the knowledge is another case of
            # the answer just given, when that answer speaks of it. Not so a term (聚光 after
            # 薯条 is another subject, which the search above finds), another year ("那22年那次
            # 呢" is another campaign), or a case the knowledge knows it cannot answer ("那保健品
            # 呢" after a food licence: licences for other categories are a known gap).
            mine = next((h for h in mixed if h.key == previous), None)
            if mine is not None:
                ranked = [replace(mine, score=max(mine.score, ranked[0].score)),
                          *(h for h in ranked if h.key != previous)][:CANDIDATES]
        return ranked

    def _leans_on_last(self, turn: Turn) -> bool:
        """Tell whether a very short message right after an answer asks more about it
        ("每年都要交吗" after the certification fee): it names no term of the knowledge, and
        finds no answer on its own or fits the last question's topic ("封号了怎么办" does
        neither, so it is a new question)."""
        norm = turn.snap.normalizer(turn.text).strip(" !！?？。.,，~～")
        scope = self._scope_of(turn.snap)
        if (not norm or len(norm) > LEANING_CHARS or norm in scope.greetings
                or _only_words_of(norm, scope.thanks)):
            return False
        if contains_any(norm, scope.chitchat) or contains_any(norm, scope.declined):
            return False
        if self._names_term(turn.snap, norm):
            return False
        alone = replace(turn, norm=norm)
        own = turn.snap.index.search(norm, top_k=2)
        if not self._trusted(alone, own, record=False):
            # "每年都要交吗" asks more about the last answer; "红烧肉怎么做" has nothing to do
            # with it and is a new question, however short.
            return bool(turn.conv.shown) and self._relates(turn, norm, turn.conv.shown[-1])
        # "入口在哪" finds the 市集 entrance on its own; after "原创保护" it asks where that is.
        # A short ask continues the last question when adding it keeps the match as good as
        # the last question's own ("原创保护 入口在哪"); a new topic dilutes it ("小红书开店要交
        # 保证金吗 封号了怎么办" matches worse than the deposit question alone).
        index, normalizer = turn.snap.index, turn.snap.normalizer
        last = index.search(turn.conv.last_question, top_k=1)
        joint = replace(turn, norm=normalizer(f"{turn.conv.last_question} {norm}"))
        together = index.search(joint.norm, top_k=2)
        return (bool(last) and bool(together) and together[0].score >= last[0].score
                and self._trusted(joint, together, record=False))

    def _in_context(self, turn: Turn) -> Reply | None:
        """Answer a question that finds nothing on its own, right after an answer, as one more
        ask about that answer's subject ("这笔钱以后不开店了能退吗" after the deposit, "具体在APP
        哪里申请" after 原创保护), when the last question and it together find a trusted entry
        among the last answer's neighbours; None otherwise (it stays not covered)."""
        if (turn.subject or turn.aspect or not turn.conv.last_question or not turn.conv.shown
                or len(turn.text) > CONTEXT_CHARS):
            return None
        snap = turn.snap
        joint = replace(turn, aspect=turn.text, text=f"{turn.conv.last_question} {turn.text}")
        joint.norm = snap.normalizer(joint.text)
        hits = self._on_subject(joint, snap.index.embed_query(joint.norm))
        if (not hits or hits[0].key not in snap.kb.entries or not self._trusted(joint, hits)
                or not self._relates(turn, turn.norm, hits[0].key)):
            return None
        return self._answer(joint, hits[0])

    def _relates(self, turn: Turn, norm: str, key: str) -> bool:
        """Tell whether a follow-up's own words have anything to do with an entry: its score
        against that entry alone (红烧肉怎么做 against the deposit entry: 0.04; 这笔钱以后不开店了
        能退吗: 0.37)."""
        hits = turn.snap.index.search(norm, {key}, top_k=1)
        return bool(hits) and hits[0].score >= FOLLOW_UP_FLOOR

    def _swap_subject(self, turn: Turn) -> str:
        """Return the last question with its term replaced by the term a follow-up names
        ("薯条能选哪些投放目标" + "那聚光呢" → "聚光能选哪些投放目标"), or "" when the follow-up
        names no known term or the last question holds none of the same kind."""
        normalizer = turn.snap.normalizer
        subject = normalizer(turn.subject)
        last = normalizer(turn.conv.last_question)
        for family in self._scope_of(turn.snap).term_families:
            if subject not in family:
                continue
            old = next((t for t in family if t in last and t != subject
                        and t not in subject), None)
            if old is not None:
                return last.replace(old, subject)
        return ""

    def _names_term(self, snap: Snapshot, norm: str) -> bool:
        """Tell whether normalised text names a term of the knowledge or another platform."""
        return any(term in norm for family in self._scope_of(snap).term_families
                   for term in family)

    def _speaks_of(self, snap: Snapshot, key: str, subject: str) -> bool:
        """Tell whether an entry's text holds most of what is informative in subject."""
        vocabulary = self._scope_of(snap).vocabulary
        known = [t for t in terms(subject) if t in vocabulary.idf]
        mine = vocabulary.entry_terms.get(key, frozenset())
        total = sum(vocabulary.weight(t) for t in known)
        return total > 0 and sum(vocabulary.weight(t) for t in known if t in mine) >= total / 2

    @staticmethod
    def _steer(hits: list[Hit], bonuses: Mapping[str, float]) -> list[Hit]:
        """Add each entry's bonus (or malus) to its score and rank again."""
        steered = [replace(h, score=min(1.0, max(0.0, h.score + bonuses[h.key])))
                   if h.key in bonuses else h for h in hits]
        return sorted(steered, key=lambda h: -h.score)

    def _other_sense(self, turn: Turn, which: int) -> Reply | None:
        """Answer "那另一种呢" with the sense the user did not pick last time."""
        concept_id, _, picked = turn.conv.last_sense.partition(".")
        concept = next((c for c in turn.snap.kb.concepts if c.id == concept_id), None)
        if concept is None or not turn.conv.last_question:
            return None
        senses = list(concept.senses)
        if which == 0:
            others = [s for s in senses if s.id != picked]
            sense = others[0] if others else None
        else:
            sense = senses[which - 1] if which <= len(senses) else None
        if sense is None:
            return None
        turn.text = turn.conv.last_question
        hits = turn.snap.index.search(f"{turn.text} {sense.label}", set(sense.entries), top_k=1)
        if not hits:
            return None
        turn.conv.last_sense = sense_id(concept, sense)
        return self._answer(turn, hits[0])

    def _ask(self, turn: Turn) -> Reply:
        snap, th = turn.snap, self.settings.thresholds
        scope = self._scope_of(snap)
        turn.norm = snap.normalizer(turn.text)
        earlier = " ".join(turn.conv.history[-self.settings.history_turns:])
        turn.conv.history = [*turn.conv.history, turn.norm][-self.settings.history_turns:]
        bare = turn.norm.strip(" !！?？。.,，~～")
        if bare in scope.greetings:
            return self._notice(turn, "greeting")
        if _only_words_of(bare, scope.thanks):
            return self._notice(turn, "welcome")
        if contains_any(turn.norm, scope.declined):
            return Reply("fallback", reason="declined", lang=turn.lang,
                         message=turn.say("declined"))
        query = snap.index.embed_query(turn.norm)
        hits = (self._on_subject(turn, query) if turn.subject or turn.aspect
                else snap.index.search_normalised(turn.norm, query, None, top_k=CANDIDATES))
        if asks_about_past(turn.norm):
            # "小红书以前能跳淘宝吗" asks for the history of 外链, not today's rules.
            hits = self._steer(hits, dict.fromkeys(scope.past, PAST_BONUS))
        named_years = years(turn.norm)
        if named_years:
            # "21年那次医美整治" asks about that year's campaign, not a later one's.
            hits = self._steer(hits, {k: YEAR_BONUS if y & named_years else -YEAR_BONUS
                                      for k, y in scope.years.items()})
        if (len(hits) > 1 and turn.conv.shown and hits[1].key == turn.conv.shown[-1]
                and len(turn.text) <= CONTEXT_CHARS
                and hits[0].score - hits[1].score < CONTEXT_TIE):
            # "具体在APP哪里申请" right after 原创保护 finds 蒲公英's threshold and 原创保护 all but
            # equally: the conversation breaks the tie.
            hits = [hits[1], hits[0], *hits[2:]]
        # A known gap that matches better than every entry is a question the knowledge knows
        # it cannot answer ("卖酒水的店铺保证金是多少"): the nearest entry would mislead.
        gap = hits[0] if hits and hits[0].key in snap.kb.gaps else None
        hits = [h for h in hits if h.key in snap.kb.entries][:5]

        # A question about another platform is out of scope unless the best entry speaks of
        # that platform too ("小红书和京东合作了吗" is ours; "抖音小店保证金" is not), or of other
        # platforms in general ("笔记里能放抖音号吗" is about diversion, ours), or the message
        # names 小红书 itself ("从抖音转过来的，小红书开店要保证金吗" asks about ours).
        named = () if turn.names_us else contains_which(turn.norm, scope.platforms)
        if named and not (hits and scope.speaks_of(hits[0].key, named)):
            return self._other_platform(turn, named)

        def answer(hit: Hit) -> Reply:
            # Whichever way the entry was found, it must speak of the platform asked about
            # ("小红书开店要保证金吗" then "抖音呢" is not answered with Xiaohongshu's deposit).
            if named and not scope.speaks_of(hit.key, named):
                return self._other_platform(turn, named)
            return self._answer(turn, hit)
        if gap is not None and gap.score >= th.answer:
            return self._known_gap(turn, gap, hits)
        if contains_any(turn.norm, scope.chitchat) and not self._trusted(turn, hits):
            return self._notice(turn, "chitchat")

        for view in scope.views:
            if not contains_any(turn.norm, view.terms):
                continue
            top = hits[0] if hits else None
            # A question about the term's past ("外链最早是怎么回事") is answered by its history
            # when that leads, whichever sense the conversation so far had settled.
            if (top and top.key in view.concept.general and top.key in scope.past
                    and asks_about_past(turn.norm) and self._trusted(turn, hits)):
                return answer(top)
            sense = (view.settle(view.clauses_with_term(turn.norm)) or view.settle(turn.norm)
                     or view.settle(earlier))
            if sense is None:
                # A question about the term itself ("个体店是什么意思") has an answer of its own.
                if (top and top.key in view.concept.general and self._trusted(turn, hits)
                        and view.asks_about_term(turn.norm)):
                    return answer(top)
                # So does one whose other words single out one sense ("导流新规几号执行"): asking
                # which sense is meant is pointless when no other sense comes close.
                if (top and self._trusted(turn, hits)
                        and self._sense_gap(view, snap, top, turn.norm) >= th.decisive):
                    return answer(top)
                # Cue words that tie between senses may still agree on one entry.
                if (top and top.key in view.shared_by_leaders(turn.norm)
                        and self._trusted(turn, hits)):
                    return answer(top)
                return self._clarify(turn, view.options(turn.lang), view.concept, 0.0)
            in_sense = snap.index.search_normalised(turn.norm, query, set(sense.entries), top_k=1)
            if (in_sense and top and top.key not in view.concept.entries
                    and top.score - in_sense[0].score >= INCIDENTAL_LEAD
                    and self._trusted(turn, hits)):
                # A cue settles a sense, but the question is about something the term only
                # names in passing ("个人店个体工商店企业店三种店有啥区别" is about shop types,
                # which no 个体店 sense answers): the best entry answers.
                continue
            if in_sense and in_sense[0].score >= th.sense_floor:
                return answer(in_sense[0])

        if not self._trusted(turn, hits):
            if named and not contains_which(scope.entry_texts[hits[0].key], named):
                return self._other_platform(turn, named)  # "淘宝店铺怎么装修": not ours at all
            in_context = None if named else self._in_context(turn)
            return in_context or self._not_covered(turn, hits)
        close = [h for h in hits[1:3] if hits[0].score - h.score < th.margin
                 and h.score >= th.answer]
        if close:
            options = [entry_option(snap.kb.entries[h.key], turn.lang) for h in (hits[0], *close)]
            return self._clarify(turn, options, None, hits[0].score)
        return answer(hits[0])

    # ------------------------------------------------------------------ a pick

    def _resolve(self, turn: Turn, pending: Pending, option: Option) -> Reply:
        snap = turn.snap
        turn.text = pending.question
        if option.id == NONE_OF_THESE:
            self._log_unanswered(turn)
            exclude = {o.id for o in pending.options}
            concept = next((c for c in snap.kb.concepts if c.id == pending.concept), None)
            if concept is not None:  # the senses offered were rejected, and their entries too
                exclude |= {key for sense in concept.senses for key in sense.entries}
            hits = snap.index.search(pending.question, top_k=6)
            nearest = self._suggestions(turn, [h for h in hits if h.key not in exclude])
            return Reply("fallback", reason="none_of_these", options=nearest,
                         message=turn.say("none_of_these"), lang=turn.lang)
        if pending.kind == "concept":
            concept = next((c for c in snap.kb.concepts if c.id == pending.concept), None)
            sense = next((s for s in concept.senses if sense_id(concept, s) == option.id),
                         None) if concept else None
            if sense is not None:
                # Remember the choice: later questions in this conversation use its sense.
                turn.conv.history = [*turn.conv.history, snap.normalizer(sense.label)]
                turn.conv.last_sense = option.id
                # The label says what the sense is about: a bare "我被限流了" gains its subject.
                hits = snap.index.search(f"{pending.question} {sense.label}", set(sense.entries),
                                         top_k=1)
                if hits:
                    return self._answer(turn, hits[0])
        entry = snap.kb.entries.get(option.id)
        if entry is not None:
            return self._answer(turn, Hit(entry.id, 1.0, 1.0, 1.0))
        # The knowledge was reloaded and the option is gone: treat it as a new question.
        return self._ask(turn)

    # ------------------------------------------------------------------ reply builders

    def _other_platform(self, turn: Turn, named: tuple[str, ...]) -> Reply:
        names = self._scope_of(turn.snap).platforms
        shown = [names.get(name, name) for name in named]
        return Reply("fallback", reason="other_platform", lang=turn.lang,
                     message=turn.say("other_platform",
                                      platforms=turn.say("list_separator").join(shown)))

    def _answer(self, turn: Turn, hit: Hit) -> Reply:
        entry = turn.snap.kb.entries[hit.key]
        related = tuple(entry_option(turn.snap.kb.entries[r], turn.lang) for r in entry.related[:3]
                        if r in turn.snap.kb.entries)
        if related:
            turn.conv.pending = Pending("suggest", turn.text, list(related), None, turn.now)
        turn.conv.shown = [*(e for e in turn.conv.shown if e != entry.id), entry.id][-SHOWN:]
        # A swapped follow-up ("那聚光呢" → "聚光能选哪些投放目标") is what the next one builds on.
        turn.conv.last_question = (turn.swapped or turn.text)[-LAST_QUESTION_CHARS:]
        return Reply("answer", score=hit.score, entry=entry, options=related, lang=turn.lang,
                     notices=self._freshness(turn, entry))

    def _freshness(self, turn: Turn, entry: Entry) -> tuple[str, ...]:
        """Say when the entry's stated period has ended (or not begun), or it is old."""
        today = dt.datetime.fromtimestamp(turn.now, dt.UTC).date()
        fresh = judge(entry, today)
        notes = []
        if fresh.expired:
            notes.append(turn.say("expired", valid_from=entry.valid_from or "…",
                                  valid_until=entry.valid_until))
        if fresh.not_yet:
            notes.append(turn.say("not_yet", valid_from=entry.valid_from))
        if fresh.old and not fresh.expired:
            notes.append(turn.say("may_have_changed", as_of=entry.as_of))
        return tuple(notes)

    def _clarify(self, turn: Turn, options: list[Option], concept: Concept | None,
                 score: float) -> Reply:
        options = [*options, Option(NONE_OF_THESE, turn.say("none_label"))]
        turn.conv.pending = Pending("concept" if concept else "candidates", turn.text, options,
                                    concept.id if concept else None, turn.now)
        message = ((concept.question_en if turn.lang == "en" and concept.question_en
                    else concept.question) if concept else turn.say("which_one"))
        return Reply("clarify", score=score, message=message, options=tuple(options),
                     lang=turn.lang, concept=concept.id if concept else None)

    def _not_covered(self, turn: Turn, hits: list[Hit]) -> Reply:
        self._log_unanswered(turn)
        return Reply("fallback", score=hits[0].score if hits else 0.0, reason="not_covered",
                     message=turn.say("not_covered"), options=self._suggestions(turn, hits),
                     lang=turn.lang)

    def _known_gap(self, turn: Turn, hit: Hit, hits: list[Hit]) -> Reply:
        """Say that the knowledge knows it cannot answer this yet, what it is missing, and which
        entries answer the questions nearby."""
        self._log_unanswered(turn)
        gap = turn.snap.kb.gaps[hit.key]
        english = turn.lang == "en"
        return Reply("fallback", score=hit.score, reason="known_gap", lang=turn.lang,
                     message=turn.say("known_gap", topic=gap.topic_en if english else gap.topic,
                                      note=gap.note_en if english else gap.note,
                                      checked=gap.checked),
                     options=self._suggestions(turn, hits, first=gap.see))

    def _suggestions(self, turn: Turn, hits: list[Hit], first: Iterable[str] = ()
                     ) -> tuple[Option, ...]:
        """Offer up to three nearest topics, the entries named in first before the hits, and
        keep them pickable by number."""
        floor = self.settings.thresholds.suggest_floor
        entries = turn.snap.kb.entries
        keys = dict.fromkeys(k for k in (*first, *(h.key for h in hits if h.score >= floor))
                             if k in entries)
        nearest = tuple(entry_option(entries[key], turn.lang) for key in keys)[:3]
        if nearest:
            turn.conv.pending = Pending("suggest", turn.text, list(nearest), None, turn.now)
        return nearest

    def _notice(self, turn: Turn, reason: str, **values: object) -> Reply:
        """Reply to a message that is no question (empty, too long, a greeting…)."""
        kb = turn.snap.kb
        # The terms sellers most often misunderstand make the best examples.
        general = [c.general[0] for c in kb.concepts if c.general]
        entries = [kb.entries[k] for k in (general[:3] or list(kb.entries)[:3])]
        titles = [e.title_en if turn.lang == "en" and e.title_en else e.title for e in entries]
        examples = say(turn.lang, "examples_separator").join(titles)
        return Reply("fallback", reason=reason, lang=turn.lang,
                     message=turn.say(reason, examples=examples, **values))

    # ------------------------------------------------------------------ bookkeeping

    def _load(self, turn: Turn) -> None:
        turn.conv = self.store.load_conversation(str(turn.key), turn.now)
        turn.loaded = True

    def _finish(self, turn: Turn, reply: Reply) -> Reply:
        if turn.loaded:
            self.store.save_conversation(str(turn.key), turn.conv,
                                         turn.now + self.settings.pending_ttl)
        self.store.log_reply(turn.now, turn.key.channel, reply.kind, reply.entry_id,
                             reply.score)
        return reply

    def _log_unanswered(self, turn: Turn) -> None:
        self.store.log_unanswered(Unanswered(turn.now, turn.key.channel, turn.key.chat,
                                             turn.key.user, turn.text))

    @staticmethod
    def _conversation_language(turn: Turn) -> str:
        """The language of the question on offer or the user's last question, for a message
        that has none of its own (history may hold a picked option's label, in the knowledge's
        language, so it comes last)."""
        pending = turn.conv.pending.question if turn.conv.pending else ""
        for said in (pending, turn.conv.last_question, *reversed(turn.conv.history)):
            if said and has_meaning(said) and not looks_like_pick(said):
                return language(said)
        return turn.lang

    def _live_pending(self, turn: Turn) -> Pending | None:
        """Return the conversation's pending question, dropping it if it has expired."""
        pending = turn.conv.pending
        if pending and turn.now - pending.asked_at > self.settings.pending_ttl:
            turn.conv.pending = None
        return turn.conv.pending

    def _lock_for(self, key: ConversationKey) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(str(key))
            if lock is None:
                lock = self._locks[str(key)] = threading.Lock()
        return lock

    def _scope_of(self, snap: Snapshot) -> _Scope:
        scope = self._scope
        if scope is None or scope.snap is not snap:
            n, kb = snap.normalizer, snap.kb
            asked = {e.id: n(" ".join((e.title, *e.questions, e.title_en, *e.questions_en)))
                     for e in kb.entries.values()}
            # Normalised piece by piece (no alias spans a question and an answer), each once.
            texts = {e.id: f"{asked[e.id]} {n(e.answer)} {n(e.answer_en)}".strip()
                     for e in kb.entries.values()}
            elsewhere = [w for w in map(n, kb.other_platforms_in_general) if w]
            scope = self._scope = _Scope(
                snap, tuple(w for w in map(n.expand, kb.this_platform) if w),
                {n(name): name for name in kb.other_platforms if n(name)},
                tuple(w for w in map(n, kb.declined_requests) if w),
                frozenset(w for w in map(n, kb.greetings) if w),
                frozenset(w for w in map(n, kb.thanks) if w),
                tuple(w for w in map(n, kb.chitchat) if w),
                tuple(ConceptView.of(c, n) for c in kb.concepts), texts,
                frozenset(key for key, text in texts.items() if contains_any(text, elsewhere)),
                Vocabulary.of(texts, asked),
                frozenset(key for key, text in asked.items() if asks_about_past(text)),
                {key: named for key, text in asked.items() if (named := years(text))},
                tuple(_longest_first(map(n, family))
                      for family in (kb.known_terms(), kb.other_platforms)))
        return scope

    def _trusted(self, turn: Turn, hits: list[Hit], record: bool = True) -> bool:
        """Tell whether the best hit may be the answer: a high enough score with some likeness
        in meaning (a bare word match such as "2" against "2 万" is no evidence on its own),
        and, with the learned judgement, an entry that covers what the question asks.

        record False for a probe that is no decision on the message (training learns from
        decisions only)."""
        if not hits:
            return False
        top = hits[0]
        th = self.settings.thresholds
        # With the judgement, a lower score still reaches it: a long English question scores
        # low on likeness ("Where did Xiaohongshu rank on the App Store …" 0.33) and may still
        # be plainly answered, which the judgement, seeing the gap to the next entry, can tell.
        judged = self.judge is not None or self.trace is not None
        if top.score < (th.judged if judged else th.answer) or top.dense <= 0.0:
            return False
        if not judged:
            return True
        described = self.describe(turn, hits)
        if self.trace is not None and record:
            self.trace.append((top.key, described))
        return self.judge is None or self.judge.answers(described)

    def describe(self, turn: Turn, hits: list[Hit]) -> np.ndarray:
        """The answerability features of a question and its best hit."""
        top = hits[0]
        gap = top.score - (hits[1].score if len(hits) > 1 else 0.0)
        vocabulary = self._scope_of(turn.snap).vocabulary
        return features(turn.norm or turn.snap.normalizer(turn.text), top.key, top.score,
                        top.dense, top.lexical, gap, vocabulary)

    def _sense_gap(self, view: ConceptView, snap: Snapshot, top: Hit, norm: str) -> float:
        """Return how far the best hit leads the best entry of any other sense on the
        question's other words: the term itself says nothing about which sense is meant. In
        "导流新规几号执行", 新规几号执行 alone finds the rules entry far ahead of the compliant
        routes; in "账号流量下降很多", 账号很多 alone leads to no entry of 限流 at all (0).

        Only senses compete: when the best entry belongs to no sense at all, the term is
        incidental to the question ("投流时直客老催我加钱" is about 直客) unless some sense's
        entry comes close.
        """
        rest = view.without_terms(norm)
        if not has_meaning(rest):
            return 0.0
        query = snap.index.embed_query(rest)
        mine = snap.index.search_normalised(rest, query, None, top_k=1)
        if not mine or mine[0].key != top.key or mine[0].score < self.settings.thresholds.answer:
            return 0.0  # the other words alone do not lead to the entry: they single out nothing
        rivals = {key for sense, _ in view.cues if top.key not in sense.entries
                  for key in sense.entries}
        rival = snap.index.search_normalised(rest, query, rivals, top_k=1) if rivals else []
        return mine[0].score - (rival[0].score if rival else 0.0)


def _longest_first(words: Iterable[str]) -> tuple[str, ...]:
    """Return the distinct non-empty words, longest first (so 红猫计划 is found before 红猫)."""
    return tuple(sorted({w for w in words if w}, key=lambda w: (-len(w), w)))


def _only_words_of(text: str, words: frozenset[str]) -> bool:
    """Tell whether text is nothing but some of words between punctuation or spaces ("好的，
    谢谢！", "好的 谢谢", "got it, thanks a lot")."""
    pieces = [p.strip() for p in re.split(r"[,，。.!！?？~～、]+", text) if p.strip()]
    return bool(pieces) and all(p in words or all(w in words for w in p.split())
                                for p in pieces)
