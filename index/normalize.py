"""Text normalisation shared by entries and queries, so both sides meet in one form."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import opencc
from pypinyin import Style, pinyin

_T2S = opencc.OpenCC("t2s")
# Control and format characters (C*) carry no meaning in a question; newlines become spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")
_SPACES = re.compile(r"\s+")
# The shortest term repaired by its sound (see Normalizer).
REPAIRED_LENGTH = 3
# Sellers write recent years short ("21年关外链那次", "22年的医美整治"): read them as 2018-2029.
# Smaller numbers before 年 are durations far more often ("开店3年", "做了10年").
_SHORT_YEAR = re.compile(r"(?<![\d.])(1[89]|2\d)(?=年)")


def strip_control(text: str) -> str:
    """Remove control characters and collapse white space."""
    return _SPACES.sub(" ", _CONTROL.sub("", text)).strip()


def has_meaning(text: str) -> bool:
    """Tell whether text holds at least one letter, digit or Chinese character."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


@lru_cache(maxsize=8192)
def _readings(char: str) -> frozenset[str]:
    """Return every toneless pinyin reading of one Chinese character."""
    return frozenset(pinyin(char, style=Style.NORMAL, heteronym=True)[0])


@lru_cache(maxsize=4096)
def _default_reading(char: str) -> str:
    return pinyin(char, style=Style.NORMAL)[0][0]


@dataclass(frozen=True)
class Normalizer:
    """Fold a text into the canonical form used for indexing and matching.

    Steps, in order: NFKC (full-width to half-width), traditional to simplified, lower case,
    alias replacement (longest alias first), removal of words that say nothing in this
    knowledge (the platform's own name is in almost every question), then homophone repair
    of canonical terms: a run
    of Chinese characters that reads exactly like a term in toneless pinyin (耗电一体 ~ 号店一体)
    is replaced by the term. Only terms of REPAIRED_LENGTH or more characters are repaired:
    two-character homophones are everyday words or word seams (涌进 ~ 佣金, 死心 ~ 私信,
    先留 ~ 限流, 充钱烦死了 ~ 千帆), so their typos are listed as aliases instead (思域, 书条).
    """

    aliases: Mapping[str, str] = field(default_factory=dict)
    terms: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    # Derived in __post_init__; not constructor arguments and not part of equality or repr.
    _alias_map: dict[str, str] = field(init=False, repr=False, compare=False)
    _alias_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _ignore_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _by_sound: dict[int, dict[str, list[tuple[tuple[str, ...], str]]]] = field(
        init=False, repr=False, compare=False)
    _lengths: list[int] = field(init=False, repr=False, compare=False)
    _firsts: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = {_fold(k): _fold(v) for k, v in self.aliases.items() if _fold(k)}
        pattern = _alias_pattern(folded)
        object.__setattr__(self, "_alias_map", folded)
        object.__setattr__(self, "_alias_re", re.compile(pattern) if pattern else None)
        ignored = sorted({_fold(w) for w in self.ignore if _fold(w).strip()}, key=len, reverse=True)
        object.__setattr__(self, "_ignore_re",
                           re.compile("|".join(map(re.escape, ignored))) if ignored else None)
        # length -> first syllable -> [(syllables, term)]: a window is checked only against
        # terms of its length whose first syllable its first character can be read as.
        by_sound: dict[int, dict[str, list[tuple[tuple[str, ...], str]]]] = {}
        for term in sorted({_fold(t) for t in self.terms}):
            if len(term) >= REPAIRED_LENGTH and all(map(_is_han, term)):
                sound = tuple(_default_reading(c) for c in term)
                by_sound.setdefault(len(term), {}).setdefault(sound[0], []).append((sound, term))
        object.__setattr__(self, "_by_sound", by_sound)
        object.__setattr__(self, "_lengths", sorted(by_sound, reverse=True))
        object.__setattr__(self, "_firsts",
                           frozenset(f for by_first in by_sound.values() for f in by_first))

    def __call__(self, text: str) -> str:
        """Return the normalised form of text."""
        text = self.expand(text)
        if self._ignore_re is not None:
            text = _SPACES.sub(" ", self._ignore_re.sub(" ", text)).strip()
        return self._repair_homophones(text)

    def expand(self, text: str) -> str:
        """Return text folded with its aliases replaced, ignored words still in place (so
        "xhs" reads 小红书, which normalising then drops)."""
        text = _SHORT_YEAR.sub(r"20\1", _fold(strip_control(text)))
        if self._alias_re is not None:
            text = self._alias_re.sub(self._expand, text)
        return text

    def _expand(self, match: re.Match[str]) -> str:
        """Replace an alias, unless the canonical form is already written there (红猫计划)."""
        target = self._alias_map[match.group(0)]
        return match.group(0) if match.string.startswith(target, match.start()) else target

    def _repair_homophones(self, text: str) -> str:
        if not self._by_sound:
            return text
        # Per position: how many Chinese characters run from it, and their readings. Each is
        # computed once per text, not once per window.
        run = [0] * (len(text) + 1)
        for i in range(len(text) - 1, -1, -1):
            run[i] = run[i + 1] + 1 if _is_han(text[i]) else 0
        readings = [_readings(c) if run[i] else frozenset() for i, c in enumerate(text)]
        out: list[str] = []
        i = 0
        while i < len(text):
            hit = self._term_at(readings, run, i)
            if hit:
                out.append(hit)
                i += len(hit)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _term_at(self, readings: list[frozenset[str]], run: list[int], i: int) -> str | None:
        firsts = readings[i] & self._firsts
        if run[i] < REPAIRED_LENGTH or not firsts:
            return None
        # Longest term first, so 号店一体 wins over a shorter term inside it.
        for length in self._lengths:
            if length > run[i]:
                continue
            by_first = self._by_sound[length]
            for first in firsts:
                for sound, term in by_first.get(first, ()):
                    if all(s in readings[i + k] for k, s in enumerate(sound)):
                        return term
        return None


def _alias_pattern(aliases: Iterable[str]) -> str:
    """Return one pattern matching every alias, longest first; a Latin edge must not sit
    inside a longer word ("deposit" is no alias inside "deposited", nor "wx" inside "wxid").

    Aliases with Latin letters at both edges share one pair of lookarounds: checked once per
    position rather than once per alias, it keeps normalising long answers fast.
    """
    def latin(ch: str) -> bool:
        return ch.isascii() and ch.isalnum()

    ordered = sorted(aliases, key=len, reverse=True)
    words = [re.escape(a) for a in ordered if latin(a[0]) and latin(a[-1])]
    parts = [rf"(?<![a-z0-9])(?:{'|'.join(words)})(?![a-z0-9])"] if words else []
    for alias in ordered:
        if latin(alias[0]) and latin(alias[-1]):
            continue
        piece = re.escape(alias)
        if latin(alias[0]):
            piece = r"(?<![a-z0-9])" + piece
        if latin(alias[-1]):
            piece += r"(?![a-z0-9])"
        parts.append(piece)
    return "|".join(parts)


def _is_han(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


def has_han(text: str) -> bool:
    """Tell whether text holds a Chinese character."""
    return any(map(_is_han, text))


def _fold(text: str) -> str:
    return _T2S.convert(unicodedata.normalize("NFKC", text)).lower()


def contains_any(text: str, words: Iterable[str]) -> bool:
    """Tell whether any of words occurs in text (both already normalised)."""
    return bool(contains_which(text, words))


def contains_which(text: str, words: Iterable[str]) -> tuple[str, ...]:
    """Return the words that occur in text, in the order given (both already normalised)."""
    return tuple(w for w in words if w and w in text)
