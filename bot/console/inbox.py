"""The inbox: what sellers asked and could not get, grouped so one decision covers a question
however it was phrased, with the live index's best candidates for each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bot.console.db import Decision
from bot.kb.loader import Entry
from bot.kb.service import Snapshot
from bot.store.base import Unanswered

NEAR = 0.6  # Dice similarity of character pairs at which two questions are one group
CANDIDATES = 3


@dataclass(frozen=True)
class Candidate:
    """An entry the live index ranks for a question, with its scores."""

    id: str
    title: str
    score: float
    dense: float
    lexical: float


@dataclass
class Group:
    """Near-duplicate unanswered questions, or the 👎 votes on one entry."""

    kind: str  # "unanswered" or "downvoted"
    text: str  # the phrasing asked most often (the entry's title for votes)
    count: int
    first: float
    last: float
    keys: list[str]  # what a decision is recorded under
    variants: list[tuple[str, int]] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    entry: Entry | None = None
    up: int = 0
    decided: Decision | None = None  # an earlier decision that newer questions reopened

    @property
    def key(self) -> str:
        return self.keys[0]


def compact(text: str, normalise: Callable[[str], str]) -> str:
    """The form two phrasings share when they are the same question: normalised (aliases,
    traditional characters, homophones of terms), letters and digits only."""
    return "".join(ch for ch in normalise(text) if ch.isalnum())


# How a question is asked, not what it asks: left out when phrasings are compared, so
# "可以卖二手手机吗" and "能不能卖二手手机" meet while "薯条怎么退款" and "薯条怎么投放" stay apart.
ASKING_WORDS = ("可不可以", "能不能", "是不是", "有没有", "会不会", "要不要", "行不行", "怎么样",
                "怎么办", "怎么", "如何", "请问", "可以", "为什么", "为啥", "吗", "呢", "啊", "呀",
                "吧", "嘛")
_ASKING = re.compile("|".join(ASKING_WORDS))


def gist(key: str) -> str:
    """A compact question without its asking words (the whole key if nothing else is left)."""
    return _ASKING.sub("", key) or key


def _pairs(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)} or {text}


def similarity(a: str, b: str) -> float:
    """Dice coefficient of two texts' character pairs (0..1)."""
    pa, pb = _pairs(a), _pairs(b)
    return 2 * len(pa & pb) / (len(pa) + len(pb)) if pa and pb else 0.0


def group_unanswered(items: Iterable[Unanswered], normalise: Callable[[str], str],
                     near: float = NEAR) -> list[Group]:
    """Group unanswered questions: equal after normalising, then near-equal ones together."""
    exact: dict[str, list[Unanswered]] = defaultdict(list)
    for item in items:
        key = compact(item.text, normalise)
        if key:
            exact[key].append(item)
    ordered = sorted(exact.items(), key=lambda kv: (-len(kv[1]), -max(u.at for u in kv[1])))
    clusters: list[tuple[str, list[tuple[str, list[Unanswered]]]]] = []
    for key, asked in ordered:
        home = next((c for c in clusters if similarity(c[0], gist(key)) >= near), None)
        if home is None:
            clusters.append((gist(key), [(key, asked)]))
        else:
            home[1].append((key, asked))
    groups = []
    for _, members in clusters:
        every = [u for _, asked in members for u in asked]
        variants: dict[str, int] = defaultdict(int)
        for u in sorted(every, key=lambda u: -u.at):
            variants[u.text] += 1
        top = max(variants.items(), key=lambda kv: kv[1])[0]
        groups.append(Group(
            kind="unanswered", text=top, count=len(every), first=min(u.at for u in every),
            last=max(u.at for u in every), keys=[f"q:{k}" for k, _ in members],
            variants=sorted(variants.items(), key=lambda kv: -kv[1]),
            channels=sorted({u.channel for u in every})))
    return groups


def group_downvotes(votes: Iterable[tuple[float, str, str, bool]],
                    entries: Mapping[str, Entry]) -> list[Group]:
    """One group per entry that got a 👎: how many 👎 and 👍, and when the last 👎 came."""
    down: dict[str, list[tuple[float, str]]] = defaultdict(list)
    up: dict[str, int] = defaultdict(int)
    for at, channel, voted, useful in votes:
        if useful:
            up[voted] += 1
        else:
            down[voted].append((at, channel))
    groups = []
    for entry_id, marks in down.items():
        entry = entries.get(entry_id)
        groups.append(Group(
            kind="downvoted", text=entry.title if entry else entry_id, count=len(marks),
            first=min(at for at, _ in marks), last=max(at for at, _ in marks),
            keys=[f"down:{entry_id}"], channels=sorted({c for _, c in marks}), entry=entry,
            up=up[entry_id]))
    return groups


def open_groups(groups: Iterable[Group], decisions: Mapping[str, Decision]) -> list[Group]:
    """Leave out groups decided after their last question; keep reopened ones, marked."""
    out = []
    for group in groups:
        made = [decisions[k] for k in group.keys if k in decisions]
        if made and len(made) == len(group.keys) and min(d.at for d in made) >= group.last:
            continue
        group.decided = max(made, key=lambda d: d.at) if made else None
        out.append(group)
    return out


def order(groups: list[Group], by: str) -> list[Group]:
    """Most frequent first (then newest), or newest first."""
    if by == "newest":
        return sorted(groups, key=lambda g: (-g.last, -g.count))
    return sorted(groups, key=lambda g: (-g.count, -g.last))


def add_candidates(groups: Iterable[Group], snap: Snapshot, top_k: int = CANDIDATES) -> None:
    """Rank the live entries for each unanswered group's main phrasing."""
    for group in groups:
        if group.kind != "unanswered":
            continue
        group.candidates = [
            Candidate(h.key, snap.kb.entries[h.key].title, h.score, h.dense, h.lexical)
            for h in snap.index.search(group.text, top_k=top_k) if h.key in snap.kb.entries]
