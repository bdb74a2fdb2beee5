"""Reading a message against the knowledge's ambiguous terms and the options on offer.

Pure functions over normalised text: which sense a message's cue words settle, and which
offered option a reply picks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.dialogue.replies import NONE_OF_THESE, Option
from bot.kb.loader import Concept, Entry, Sense

_NONE_WORDS = {"都不是", "都不对", "以上都不是", "都没有", "不是", "none", "neither",
               "none of these", "none of them"}
_CN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}
_PICK = re.compile(r"^(?:第|选|选择)?\s*(\d{1,2}|[一二三四五六七八九十])\s*(?:个|项|条|号|\.|、)?$")
_EDGE_PUNCT = " \t\r\n。，,.!！?？~～:：;；\"'“”‘’()（）[]【】"
_NEGATIONS = "不没别非无未"
TERM_REACH = 3  # characters between a term and a general cue word that still ask about the term


@dataclass(frozen=True)
class ConceptView:
    """A concept with its terms and cue words in normalised form."""

    concept: Concept
    terms: tuple[str, ...]
    cues: tuple[tuple[Sense, tuple[str, ...]], ...]
    general_cues: tuple[str, ...]

    @classmethod
    def of(cls, concept: Concept, normalize: Callable[[str], str]) -> ConceptView:
        """Normalise a concept's words the way messages are normalised."""
        return cls(concept, tuple(normalize(t) for t in concept.terms),
                   tuple((s, tuple(normalize(c) for c in s.cues)) for s in concept.senses),
                   tuple(normalize(c) for c in concept.general_cues))

    def settle(self, text: str) -> Sense | None:
        """Return the sense whose cue words the text uses most, if exactly one leads."""
        leaders = self.leaders(text)
        return leaders[0] if len(leaders) == 1 else None

    def leaders(self, text: str) -> list[Sense]:
        """Return the senses whose cue words the text uses most (none if it uses none)."""
        counts = [(sum(1 for c in cues if affirms(text, c)), sense) for sense, cues in self.cues]
        best = max((n for n, _ in counts), default=0)
        return [sense for n, sense in counts if n == best] if best > 0 else []

    def shared_by_leaders(self, text: str) -> set[str]:
        """Return the entries every leading sense shares: when cues tie between senses
        ("开店之后笔记像广告没流量"), an entry that belongs to all of them answers either way."""
        leaders = self.leaders(text)
        if len(leaders) < 2:
            return set()
        return set(leaders[0].entries).intersection(*(s.entries for s in leaders[1:]))

    def clauses_with_term(self, text: str) -> str:
        """Return the clauses of normalised text that name the term (its cues belong there:
        in "博主打过官方电话，说引流留微信不行" 官方 is about the call, not about 引流)."""
        clauses = [c for c in re.split(r"[,.;!?，。；！？]", text) if c]
        mine = [c for c in clauses if any(t in c for t in self.terms)]
        return " ".join(mine) if mine else text

    def asks_about_term(self, text: str) -> bool:
        """Tell whether text asks about the term itself: one of the general cue words sits
        right by the term ("个体店是什么意思", "为啥个体店有两种解释"), not somewhere else in the
        question ("个体店开店流程是什么" asks about a procedure)."""
        terms = [(at, at + len(t)) for t in self.terms for at in _find_all(text, t)]
        cues = [(at, at + len(c)) for c in self.general_cues for at in _find_all(text, c)]
        return any(max(cue_start - term_end, term_start - cue_end) <= TERM_REACH
                   for term_start, term_end in terms for cue_start, cue_end in cues)

    def without_terms(self, text: str) -> str:
        """Return normalised text with the concept's own terms taken out."""
        for term in sorted(self.terms, key=len, reverse=True):
            text = text.replace(term, " ")
        return " ".join(text.split())

    def options(self, lang: str = "zh") -> list[Option]:
        """Return one option per sense, labelled in the user's language where possible."""
        return [Option(sense_id(self.concept, s), s.label_en if lang == "en" and s.label_en
                       else s.label) for s in self.concept.senses]


def _find_all(text: str, word: str) -> list[int]:
    """Return every position at which word starts in text."""
    found, at = [], text.find(word) if word else -1
    while at >= 0:
        found.append(at)
        at = text.find(word, at + 1)
    return found


def affirms(text: str, cue: str) -> bool:
    """Tell whether text uses cue other than negated ("不违规" does not say "违规")."""
    return any(at == 0 or text[at - 1] not in _NEGATIONS for at in _find_all(text, cue))


def sense_id(concept: Concept, sense: Sense) -> str:
    """Return the option id of one sense of a concept (short: it travels in button data)."""
    return f"{concept.id}.{sense.id}"


def entry_option(entry: Entry, lang: str = "zh") -> Option:
    """Offer an entry by its title, in English where the user writes English."""
    return Option(entry.id, entry.title_en if lang == "en" and entry.title_en else entry.title)


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


_OTHER_SENSE = re.compile(r"^(?:那|那么)?(?:另一种|另外一种|另一个|另外一个|另外那种|另一类|"
                          r"第\s*([一二三四五2-5])\s*(?:种|个|类))(?:呢|吧|怎么办|怎么弄|怎么样)?$")
_FOLLOW_START = ("那", "那么", "要是", "如果是", "换成", "what about", "and ", "how about")
_FOLLOW_ASKS = ("多少钱", "多久", "几天", "要钱吗", "收费吗", "怎么收费", "费用", "门槛", "条件",
                "怎么申请", "能退吗", "有效期", "什么时候", "哪年", "how much", "how long",
                "how many", "when does", "when did", "when will", "is it free", "does it cost",
                "how do i apply", "how do i join", "how to apply", "how to join",
                "what's the penalty", "what is the penalty", "要什么材料", "what documents",
                "which documents")
FOLLOW_UP_CHARS = 14  # longer messages carry their own subject
# Words that point back at what was just said: "这笔钱以后能退吗" asks about the deposit just
# answered, whatever else its words match on their own.
_POINTS_BACK = ("这笔", "这项", "它", "it ")


_FOLLOW_END = ("的呢", "呢", "吧", "吗", "的话", "?")


def follow_up_subject(text: str) -> str:
    """Return the new subject a follow-up names ("那京东的呢" → "京东"), or "" when it only
    asks about another side of the same subject ("要多久", "多少钱")."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    if _asks_aspect(raw) or raw.startswith(_POINTS_BACK):
        return ""
    for start in sorted(_FOLLOW_START, key=len, reverse=True):
        if raw.startswith(start):
            raw = raw[len(start):]
            break
    for end in _FOLLOW_END:
        if raw.endswith(end):
            raw = raw[: -len(end)]
            break
    raw = raw.strip(_EDGE_PUNCT)
    return "" if _asks_aspect(raw) else raw


def other_sense(text: str) -> int | None:
    """Return which other sense "那另一种呢" / "第三种呢" asks for: 0 for "the other", or N."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    match = _OTHER_SENSE.match(raw)
    if not match:
        return None
    token = match.group(1)
    if not token:
        return 0
    return int(token) if token.isdigit() else _CN_DIGITS[token]


def is_short(text: str) -> bool:
    """Tell whether a message is short enough to lean on what came before (English words are
    longer: "for an online shop" is as short as "开网店的")."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT)
    return bool(raw) and len(raw) <= FOLLOW_UP_CHARS * (3 if raw.isascii() else 1)


def is_follow_up(text: str) -> bool:
    """Tell whether a short message leans on the previous question ("那兴趣博主呢", "要多久")."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    if not is_short(raw):
        return False
    return (raw.startswith(_FOLLOW_START) or raw.startswith(_POINTS_BACK) or raw.endswith("呢")
            or _asks_aspect(raw))


def _asks_aspect(raw: str) -> bool:
    """Tell whether a short message only asks for a figure or condition ("要多久", "多少钱?")."""
    return any(raw.startswith(a) or (a in raw and len(raw) <= len(a) + 2)
               for a in _FOLLOW_ASKS)


_CLAUSE_END = re.compile(r"(?<=[，,。！!？?；;\n…])")
_ASKING = ("吗", "？", "?", "怎么", "多少", "几", "是不是", "能不能", "可不可以", "会不会", "什么",
           "哪", "咋", "how", "what", "can ", "why")
LONG_MESSAGE = 40  # characters from which a message is read clause by clause


def clauses(text: str) -> list[str]:
    """Cut a long message into its clauses (a question sits in one; the rest is the story)."""
    return [c.strip() for c in _CLAUSE_END.split(text) if len(c.strip()) >= 4]


def asks(span: str) -> bool:
    """Tell whether a clause asks something."""
    return any(word in span.lower() for word in _ASKING)


# 之前 and 过去 are left out: "确认收货之前", "发过去" speak of order, not of history.
PAST_WORDS = ("以前", "当年", "早年", "早几年", "前几年", "最早", "历史", "哪年", "哪一年", "曾经",
              "那时候", "back then", "history", "originally", "which year",
              "in the past", "first started")


def asks_about_past(normalised: str) -> bool:
    """Tell whether a question asks how things were or when they began, not how they are."""
    return any(word in normalised for word in PAST_WORDS)


_YEAR = re.compile(r"(?<!\d)20[12]\d(?!\d)")


def years(normalised: str) -> frozenset[str]:
    """Return the years 2010-2029 a normalised text names ("2021年6月" → {"2021"})."""
    return frozenset(_YEAR.findall(normalised))


def looks_like_pick(text: str) -> bool:
    """Tell whether text is only a number, 第N个 or 都不是: a pick, never a question."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    return bool(_PICK.match(raw)) or raw in _NONE_WORDS


_HAN_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_LATIN_WORDS = re.compile(r"[a-z]+(?:'[a-z]+)?", re.IGNORECASE)
# A Chinese term quoted inside an English sentence ("what does 个体店 mean") is this short.
QUOTED_TERM_CHARS = 4


def language(text: str) -> str:
    """Return "en" for a message written in English, else "zh".

    English may quote a Chinese term or two ("my 薯条 order got rejected", "what is 号店一体"):
    the sentence is English when its Chinese comes in short runs among enough English words.
    "小红书shop deposit多少" and "挂了product会限流吗" are Chinese sentences with an English word.
    """
    runs = _HAN_RUNS.findall(text)
    words = _LATIN_WORDS.findall(text)
    if not runs:
        return "en" if sum(map(len, words)) >= 2 else "zh"
    starts_latin = bool(words) and text.lstrip().lower().startswith(words[0].lower())
    if starts_latin and len(words) >= 3 and len(runs) <= 2:
        return "en"  # "Is 交易导流违规管理细则 still in force?" quotes a long name
    if any(len(run) > QUOTED_TERM_CHARS for run in runs):
        return "zh"
    return "en" if len(words) >= 3 or (len(words) == 2 and len(runs) == 1 and starts_latin) \
        else "zh"
