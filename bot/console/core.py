"""The console's state and operations, apart from HTTP: accounts, draft, inbox, entries,
try-it and previews. Blocking: the web layer calls it off the event loop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.channels.render import render
from bot.console import auth, inbox
from bot.console.db import ConsoleDB
from bot.console.files import Checked, Draft, EntryForm, digest, manifest, unified_diff
from bot.console.journal import Journal
from bot.console.publish import Publisher
from bot.copy import say
from bot.dialogue.engine import ConversationKey
from bot.dialogue.replies import Reply
from bot.dialogue.senses import entry_option, language
from bot.kb.freshness import judge
from bot.kb.loader import BASIS_LABELS, Entry, KnowledgeBase, Problem
from bot.kb.service import KnowledgeService, Snapshot
from bot.settings import Settings
from bot.store.base import Stats
from bot.store.resilient import STORE_ERRORS, reload_announcer
from index.search import Hit

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

LOGIN_WINDOW = 15 * 60.0  # failed logins counted over this long
LOGIN_LIMIT = 5  # failures per name or per address before logins are refused for a while
INBOX_DAYS = (7, 30, 90)
INBOX_PAGE = 30
INBOX_ROWS = 5000  # unanswered questions read for grouping


class Refused(Exception):
    """An action the console will not do; the message says why, for the page."""


@dataclass(frozen=True)
class Tried:
    """What the engine did with a question, and why."""

    question: str
    source: str
    reply: Reply
    hits: list[Hit]
    titles: dict[str, str]
    why: list[str]
    telegram: str
    wecom: str


@dataclass
class Saved:
    rel: str
    text: str
    checked: Checked

    @property
    def errors(self) -> list[Problem]:
        return self.checked.errors


class Console:
    """Everything the console does, over the bot's live service and store."""

    def __init__(self, root: Path, users: dict[str, str], service: KnowledgeService,
                 store: Stats, settings: Settings,
                 announce: Callable[[], object] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.users = users
        self.service = service
        self.store = store
        self.settings = settings
        self.clock = clock
        self.db = ConsoleDB(root / "console.sqlite")
        self.draft = Draft(service.knowledge_dir, root)
        self.journal = Journal(store)
        self.publisher = Publisher(service, settings, self.draft, self.db, root, announce, clock)
        self._state: tuple[str, Checked] | None = None
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        iterations = min((auth.iterations(h) for h in users.values()),
                         default=auth.MIN_ITERATIONS)
        self._dummy = auth.hash_password("not a password", iterations, "console-dummy")
        self.publisher.ensure_initial()

    @classmethod
    def open(cls, app: App) -> Console:
        """Open the console beside the bot (its files live in $BOT_DATA_DIR/console)."""
        return cls(app.settings.data_dir / "console", auth.parse_users(app.env.BOT_CONSOLE_USERS),
                   app.service, app.store, app.settings, reload_announcer(app.store))

    def start_background(self) -> threading.Thread:
        """Score the published knowledge now, so the first publish waits only for its own."""
        thread = threading.Thread(target=self.publisher.prepare, name="console-prepare",
                                  daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ accounts

    def login(self, name: str, password: str, address: str) -> str:
        """Check a login; return the session's cookie token or raise Refused."""
        now = self.clock()
        since = now - LOGIN_WINDOW
        if self.db.recent_failures(name, address, since) >= LOGIN_LIMIT:
            wait = self.db.oldest_failure(name, address, since) + LOGIN_WINDOW - now
            raise Refused(f"limited:{max(1, round(wait / 60))}")
        encoded = self.users.get(name)
        # An unknown name costs as much as a wrong password: timing tells no names apart.
        ok = auth.verify_password(password, encoded or self._dummy) and encoded is not None
        if not ok:
            self.db.login_failed(name, address, now)
            self.db.audit(now, name or "?", "login_failed", address)
            raise Refused("wrong")
        token, _ = self.db.open_session(name, now)
        self.db.audit(now, name, "login", address)
        return token

    # ------------------------------------------------------------------ the draft

    def state(self) -> Checked:
        """The loader's verdict on the draft, recomputed only when a draft file changed."""
        self.draft.sync()
        key = _manifest_key(self.draft.dir)
        with self._state_lock:
            if self._state is None or self._state[0] != key:
                self._state = (key, self.draft.check())
            return self._state[1]

    def state_key(self) -> str:
        return _manifest_key(self.draft.dir)

    def entries(self) -> dict[str, tuple[str, Entry]]:
        """The draft's entries by id, with their knowledge-relative paths."""
        kb = self.state().kb
        if kb is None:
            return {}
        return {k: (e.path.split("/", 1)[1], e) for k, e in kb.entries.items()}

    def remember(self, text: str | None) -> str:
        """Keep a version of a file by its digest, so a conflict can show what changed."""
        if text is None:
            return ""
        key = digest(text)
        self.db.keep(key, text, self.clock())
        return key

    def recall(self, key: str) -> str | None:
        return self.db.kept(key) if key else None

    # ------------------------------------------------------------------ editing

    def check_text(self, rel: str, text: str | None) -> Saved:
        return Saved(rel, text or "", self.draft.check({rel: text}))

    def save(self, who: str, rel: str, text: str | None, base: str) -> Saved:
        """Validate and write one draft file (None deletes it) if unchanged since opened.

        Raises Conflict (files.Conflict) when it changed; returns the check with errors, and
        writes nothing, when the loader finds errors.
        """
        with self._write_lock:
            saved = self.check_text(rel, text)
            if saved.errors:
                return saved
            before = self.draft.write(rel, text, base)
            action = "delete" if text is None else "create" if before is None else "edit"
            self.remember(text)
            self.db.audit(self.clock(), who, action, rel, unified_diff(before, text, rel))
            return saved

    def attach(self, who: str, entry_id: str, question: str, keys: list[str]) -> str:
        """Add an inbox question as a phrasing of an entry (English ones to questions_en)."""
        question = " ".join(question.split())
        with self._write_lock:
            found = self.entries().get(entry_id)
            if found is None:
                raise Refused(f"草稿里没有条目 {entry_id}。")
            rel = found[0]
            text = self.draft.read(rel) or ""
            form = EntryForm.parse(text)
            if form is None:
                raise Refused(f"{rel} 无法按表单读取，请在编辑页里以文本方式修改。")
            target = form.questions_en if language(question) == "en" else form.questions
            target.append(question)
            new = form.compose()
            saved = self.check_text(rel, new)
            if saved.errors:
                raise Refused("加入后没有通过检查：" + "；".join(str(p) for p in saved.errors))
            self.draft.write(rel, new, digest(text))
            self.remember(new)
            now = self.clock()
            for key in keys:
                self.db.decide(key, "attached", entry_id, who, now)
            self.db.audit(now, who, "attach", rel, unified_diff(text, new, rel))
        return rel

    def dismiss(self, who: str, keys: list[str], reason: str, text: str) -> None:
        reason = " ".join(reason.split())[:300]
        if not reason:
            raise Refused("请写明忽略的理由。")
        now = self.clock()
        for key in keys:
            self.db.decide(key, "dismissed", reason, who, now)
        self.db.audit(now, who, "dismiss", text[:200], reason)

    def resolve(self, who: str, rel: str, take_server: bool) -> None:
        before = self.draft.read(rel)
        self.draft.resolve(rel, take_server)
        self.db.audit(self.clock(), who, "conflict_take_server" if take_server
                      else "conflict_keep_draft", rel,
                      unified_diff(before, self.draft.read(rel), rel))

    # ------------------------------------------------------------------ inbox

    def inbox(self, days: int, by: str, show_down: bool = True) -> list[inbox.Group]:
        since = self.clock() - days * 86400
        snap = self.service.current
        try:
            asked = self.journal.unanswered_since(since, INBOX_ROWS)
            votes = self.journal.votes_since(since)
        except STORE_ERRORS:
            asked, votes = [], []
        groups = inbox.group_unanswered(asked, snap.normalizer)
        if show_down:
            groups += inbox.group_downvotes(votes, snap.kb.entries)
        groups = inbox.order(inbox.open_groups(groups, self.db.decisions()), by)[:INBOX_PAGE]
        inbox.add_candidates(groups, snap)
        return groups

    # ------------------------------------------------------------------ previews and try-it

    def preview(self, kb: KnowledgeBase, entry_id: str) -> dict[str, str]:
        """The entry's reply as Telegram (HTML) and WeCom (text) show it, in both languages."""
        entry = kb.entries.get(entry_id)
        if entry is None:
            return {}
        related = tuple(entry_option(kb.entries[r]) for r in entry.related[:3]
                        if r in kb.entries)
        out = {}
        for lang in ("zh", "en"):
            reply = Reply("answer", score=1.0, entry=entry, options=related, lang=lang,
                          notices=self.notices(entry, lang))
            out[f"telegram_{lang}"] = render(reply, "html")
            out[f"wecom_{lang}"] = render(reply, "text")
        return out

    def notices(self, entry: Entry, lang: str) -> tuple[str, ...]:
        """The caveats the engine adds to an answer today (ended period, old date)."""
        fresh = judge(entry, dt.datetime.fromtimestamp(self.clock(), dt.UTC).date())
        notes = []
        if fresh.expired:
            notes.append(say(lang, "expired", valid_from=entry.valid_from or "…",
                             valid_until=entry.valid_until))
        if fresh.not_yet:
            notes.append(say(lang, "not_yet", valid_from=entry.valid_from))
        if fresh.old and not fresh.expired:
            notes.append(say(lang, "may_have_changed", as_of=entry.as_of))
        return tuple(notes)

    def try_it(self, question: str, source: str = "live") -> Tried:
        """Run the real engine (fresh conversation, store in memory) on one question."""
        snap: Snapshot | None
        if source == "draft":
            snap = self.publisher.draft_snapshot(self.state(), self.state_key())
            if snap is None:
                raise Refused("草稿有错误，不能试；请先修正。")
        else:
            snap = self.service.current
        engine = self.publisher.engine(snap)
        reply = engine.reply(ConversationKey("console", "try", "maintainer"), question)
        hits = snap.index.search(question, top_k=8)
        titles = {**{k: e.title for k, e in snap.kb.entries.items()},
                  **{k: f"已知空白：{g.topic}" for k, g in snap.kb.gaps.items()}}
        return Tried(question, source, reply, hits, titles, self.why(reply, hits),
                     render(reply, "html"), render(reply, "text"))

    def why(self, reply: Reply, hits: list[Hit]) -> list[str]:
        th = self.settings.thresholds
        top = hits[0] if hits else None
        lines = []
        if reply.kind == "answer":
            lines.append(f"回答：条目 {reply.entry_id} 的综合得分 {reply.score:.3f}，"
                         f"不低于回答门槛 {th.answer:.2f}"
                         f"（歧义词已确定意思时的门槛为 {th.sense_floor:.2f}）。")
            if top and reply.entry_id != top.key:
                lines.append(f"排名第一的是 {top.key}（{top.score:.3f}），"
                             "但问题里的提示词把范围限定在了某个概念的一种意思里。")
        elif reply.kind == "clarify":
            if reply.concept:
                lines.append(f"反问：问题里有歧义词（概念 {reply.concept}），"
                             "但没有能判断是哪种意思的提示词，"
                             "而且最匹配的条目没有明显领先其他意思。")
            else:
                lines.append(f"反问：前几个条目得分相差不到 {th.margin:.2f}，分不出是哪一个。")
        else:
            reason = reply.reason or reply.kind
            if reason == "not_covered":
                best = f"最高得分 {top.score:.3f}（{top.key}）" if top else "没有任何匹配"
                lines.append(f"无法回答：{best}，低于回答门槛 {th.answer:.2f}；"
                             "这个问题会出现在收件箱里。")
            elif reason == "known_gap" and top:
                lines.append(f"已知空白：问题最像 gaps.yaml 里的 {top.key}（{top.score:.3f}），"
                             "比任何条目都像，所以说明答不了而不是拿相近的条目回答；"
                             "这个问题会出现在收件箱里。")
            else:
                lines.append(f"没有查知识库（原因：{reason}）："
                             "问候、闲聊、别的平台或代写请求等有固定的回复。")
        return lines


def _manifest_key(root: Path) -> str:
    return hashlib.sha256(json.dumps(manifest(root), sort_keys=True).encode()).hexdigest()


def basis_choices() -> list[str]:
    return list(BASIS_LABELS.values())
