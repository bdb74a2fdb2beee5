"""The channel-neutral reply the dialogue engine produces and every channel renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.kb.loader import Entry

Kind = Literal["answer", "clarify", "fallback", "notice"]
NONE_OF_THESE = "none"


@dataclass(frozen=True)
class Option:
    """A choice offered to the user; id is short and ASCII (it travels in button data)."""

    id: str
    label: str


@dataclass(frozen=True)
class Reply:
    """One reply: an answer from an entry, a clarifying question, an honest fallback, or a
    notice (help, an admin command's report, a limit) that is no answer at all.

    reason refines fallbacks: not_covered and known_gap (both logged as unanswered; a known
    gap is a question the knowledge lists as not answerable yet), none_of_these, declined,
    other_platform, greeting, chitchat, stale_pick, empty, no_text, too_long, rate_limited,
    empty_ask.
    """

    kind: Kind
    score: float = 0.0
    entry: Entry | None = None
    message: str = ""
    options: tuple[Option, ...] = ()
    reason: str = ""
    lang: str = "zh"  # the user's language, for the frame around the answer
    concept: str | None = None  # the ambiguous concept a clarifying question is about
    notices: tuple[str, ...] = ()  # caveats shown with an answer (a period that has ended…)

    @property
    def entry_id(self) -> str | None:
        """Return the id of the answered entry, if any."""
        return self.entry.id if self.entry else None


def notice(message: str, lang: str = "zh") -> Reply:
    """Wrap plain text (help, an admin report) as a reply."""
    return Reply("notice", message=message, lang=lang)
