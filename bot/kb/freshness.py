"""How current an entry is on a given day: a stated period that has ended, or an old as-of date.

Dates are the authors' (`as_of`, `valid_from`, `valid_until`); today comes from the caller's
clock, so a fixed clock makes every judgement reproducible.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from bot.kb.loader import Entry

STALE_AFTER_DAYS = 365  # an answer older than this carries a "may have changed" note


@dataclass(frozen=True)
class Freshness:
    """What a reader should be told about an entry's age today."""

    expired: bool  # the period the source states has ended
    not_yet: bool  # the period has not begun
    old: bool  # as_of is more than STALE_AFTER_DAYS ago

    @property
    def fine(self) -> bool:
        return not (self.expired or self.not_yet or self.old)


def period_end(value: str) -> dt.date:
    """Return the last day a date written as 2025, 2025-08 or 2025-08-25 can mean."""
    parts = [int(p) for p in value.split("-")]
    if len(parts) == 1:
        return dt.date(parts[0], 12, 31)
    if len(parts) == 2:
        return dt.date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    return dt.date(parts[0], parts[1], parts[2])


def judge(entry: Entry, today: dt.date) -> Freshness:
    """Judge one entry on one day."""
    expired = bool(entry.valid_until) and dt.date.fromisoformat(entry.valid_until) < today
    not_yet = bool(entry.valid_from) and dt.date.fromisoformat(entry.valid_from) > today
    # A year written alone is read as its last day: the note warns about age, not doubt.
    old = (today - period_end(entry.as_of)).days > STALE_AFTER_DAYS
    return Freshness(expired, not_yet, old)


def needing_review(entries: Iterable[Entry], today: dt.date) -> list[tuple[Entry, Freshness]]:
    """Return the entries whose period has ended or whose as-of date is old, expired first."""
    found = [(e, judge(e, today)) for e in entries]
    found = [(e, f) for e, f in found if f.expired or f.old]
    return sorted(found, key=lambda pair: (not pair[1].expired, pair[0].as_of, pair[0].id))
