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
        counts = [(sum(1 for c in cues if affirms(text, c)), sense) for sense, cues in self.cues]
        best = max((n for n, _ in counts), default=0)
        leaders = [sense for n, sense in counts if n == best]
        return leaders[0] if best > 0 and len(leaders) == 1 else None

    def options(self) -> list[Option]:
        """Return one option per sense."""
        return [Option(sense_id(self.concept, s), s.label) for s in self.concept.senses]


def affirms(text: str, cue: str) -> bool:
    """Tell whether text uses cue other than negated ("不违规" does not say "违规")."""
    start = text.find(cue) if cue else -1
    while start >= 0:
        if start == 0 or text[start - 1] not in _NEGATIONS:
            return True
        start = text.find(cue, start + 1)
    return False


def sense_id(concept: Concept, sense: Sense) -> str:
    """Return the option id of one sense of a concept (short: it travels in button data)."""
    return f"{concept.id}.{sense.id}"


def entry_option(entry: Entry) -> Option:
    """Offer an entry by its title."""
    return Option(entry.id, entry.title)


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


def looks_like_pick(text: str) -> bool:
    """Tell whether text is only a number or 第N个: a pick, never a question of its own."""
    raw = unicodedata.normalize("NFKC", text).strip(_EDGE_PUNCT).lower()
    return bool(_PICK.match(raw))


def language(text: str) -> str:
    """Return "en" for a message written in Latin letters without Chinese, else "zh"."""
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf")
    latin = sum(1 for ch in text if ch.isascii() and ch.isalpha())
    return "en" if latin >= 3 and han == 0 else "zh"
