"""The dashboard's figures, laid out as server-side SVG bar charts.

Totals come from the store's Stats port, exactly as `/stats` reads them; days, channels and
entries come from the journal rows over the same period (days are UTC, like `/stats`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from bot.console.journal import Journal
from bot.kb.loader import Entry
from bot.store.base import Stats

KINDS = ("answer", "clarify", "fallback")
KIND_LABELS = {"answer": "回答", "clarify": "反问澄清", "fallback": "无法回答"}
CHART_W, CHART_H, AXIS = 720, 200, 24
BAR_W = 420


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    css: str
    title: str


@dataclass(frozen=True)
class Row:
    """One labelled horizontal bar."""

    label: str
    value: int
    width: float
    link: str = ""
    note: str = ""


@dataclass
class Dashboard:
    days: int
    since: float
    since_day: str
    totals: dict[str, int]
    total: int
    up: int
    down: int
    day_rects: list[Rect] = field(default_factory=list)
    day_labels: list[tuple[float, str]] = field(default_factory=list)
    peak: int = 0
    channels: list[tuple[str, dict[str, int], int, list[Rect]]] = field(default_factory=list)
    entries: list[Row] = field(default_factory=list)
    unanswered: list[Row] = field(default_factory=list)

    def rate(self, kind: str) -> float:
        return self.totals.get(kind, 0) / self.total if self.total else 0.0

    @property
    def satisfaction(self) -> float:
        return self.up / (self.up + self.down) if self.up + self.down else 0.0


def start_of(days: int, now: float) -> float:
    """Midnight (UTC) at the start of a period of `days` days ending today."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    first = today - dt.timedelta(days=days - 1)
    return dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC).timestamp()


def build(stats: Stats, journal: Journal, entries: dict[str, Entry], days: int,
          now: float) -> Dashboard:
    since = start_of(days, now)
    totals = stats.reply_counts(since)
    up, down = stats.feedback_counts(since)
    board = Dashboard(days, since, dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%d"),
                      totals, sum(totals.get(k, 0) for k in KINDS), up, down)
    rows = journal.reply_summary(since)
    per_day: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_channel: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, channel, kind, n in rows:
        per_day[day][kind] += n
        per_channel[channel][kind] += n
    first = dt.datetime.fromtimestamp(since, dt.UTC).date()
    day_names = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    board.peak = max([sum(per_day[d].values()) for d in day_names] + [1])
    slot = CHART_W / days
    for i, day in enumerate(day_names):
        y = float(CHART_H)
        for kind in KINDS:
            n = per_day[day].get(kind, 0)
            if not n:
                continue
            h = CHART_H * n / board.peak
            y -= h
            board.day_rects.append(Rect(i * slot + slot * 0.1, y, slot * 0.8, h, f"k-{kind}",
                                        f"{day} {KIND_LABELS[kind]} {n}"))
        if days <= 14 or i % max(1, days // 10) == 0:
            board.day_labels.append((i * slot + slot / 2, day[5:]))
    widest = max([sum(c.values()) for c in per_channel.values()] + [1])
    for channel, counts in sorted(per_channel.items(), key=lambda kv: -sum(kv[1].values())):
        x, rects = 0.0, []
        for kind in KINDS:
            n = counts.get(kind, 0)
            if n:
                w = BAR_W * n / widest
                rects.append(Rect(x, 0, w, 18, f"k-{kind}", f"{channel} {KIND_LABELS[kind]} {n}"))
                x += w
        board.channels.append((channel, dict(counts), sum(counts.values()), rects))
    asked = journal.entry_counts(since, 10)
    top = max([n for _, n in asked] + [1])
    board.entries = [Row(entries[e].title if e in entries else e, n, BAR_W * n / top, e)
                     for e, n in asked]
    missing = stats.top_unanswered(since, 10)
    top = max([n for _, n in missing] + [1])
    board.unanswered = [Row(text, n, BAR_W * n / top) for text, n in missing]
    return board
