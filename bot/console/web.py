"""The console over HTTP: an aiohttp sub-application under /admin on the bot's own server.

Pages are rendered on the server (jinja2, every value escaped); a little JavaScript checks an
entry as it is typed. Every request but the login page and the static files needs a session
(an HttpOnly, SameSite=Strict cookie); every change needs the session's CSRF token, and is
refused with 403 without it. Responses carry a Content-Security-Policy that allows only the
console's own scripts and styles.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hmac
import html
import logging
import re
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web
from markupsafe import Markup

from bot.channels.admin import AdminConsole
from bot.console import dashboard
from bot.console.core import INBOX_DAYS, Console, Refused, basis_choices
from bot.console.db import Session
from bot.console.files import TOP_FILES, Conflict, EntryForm, safe_rel, unified_diff
from bot.dialogue.senses import language
from bot.kb.freshness import judge
from bot.kb.loader import BASIS_LABELS, Entry

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "/admin"
COOKIE = "xhs_console"
LOGIN_COOKIE = "xhs_console_login"
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_FOLDER = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
SESSION = web.RequestKey("session", Session)
_TELEGRAM_TAGS = re.compile(r"<(/?)(b|i|u|s|code|pre)>")
DONE = {
    "saved": "已保存到草稿。发布后机器人才会用新内容回答。",
    "deleted": "已从草稿中删除这个条目。发布后生效。",
    "attached": "已把这个问法加进条目的草稿。发布后机器人就能回答它。",
    "dismissed": "已忽略这组问题（有新的同类提问时会重新出现）。",
    "resolved": "冲突已处理。",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def telegram_html(rendered: str) -> Markup:
    """Show Telegram's HTML as Telegram would: its simple tags stay tags, every other piece is
    text (its entities read as Telegram reads them, then escaped again for this page)."""
    parts = _TELEGRAM_TAGS.split(rendered)
    out = []
    for i, part in enumerate(parts):
        if i % 3 == 0:
            out.append(str(Markup.escape(html.unescape(part))))
        elif i % 3 == 1:
            out.append(f"<{part}{parts[i + 1]}>")
    return Markup("".join(out))


def when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%m-%d %H:%M")


class ConsoleRoutes:
    """The console's routes, installed on the bot's HTTP application."""

    def __init__(self, console: Console, background: bool = True) -> None:
        self.console = console
        self.background = background
        self.pool = ThreadPoolExecutor(4, thread_name_prefix="console")
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.console", "templates"), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(
            when=when, pct=lambda x: f"{100 * x:.1f}%", num=lambda x: f"{x:.3f}",
            telegram=telegram_html, basis=lambda b: BASIS_LABELS.get(b, b))

    def install(self, app: web.Application) -> None:
        sub = web.Application(middlewares=[self._guard])
        get, post = sub.router.add_get, sub.router.add_post
        get("/", self.home)
        get("/login", self.login_page)
        post("/login", self.login)
        post("/logout", self.logout)
        get("/inbox", self.inbox)
        post("/inbox/attach", self.attach)
        post("/inbox/dismiss", self.dismiss)
        get("/entries", self.entries)
        get("/edit", self.edit)
        get("/new", self.new)
        post("/edit", self.save)
        post("/check", self.check)
        post("/conflict", self.conflict)
        get("/try", self.try_it)
        get("/publish", self.publish_page)
        post("/publish", self.publish)
        post("/rollback", self.rollback)
        get("/dashboard", self.dashboard)
        get("/audit", self.audit)
        sub.router.add_static("/static/", STATIC)
        app.router.add_get(PREFIX, self.home)
        app.add_subapp(PREFIX, sub)
        if self.background:
            self.console.start_background()

    # ------------------------------------------------------------------ plumbing

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(function, *args))

    def page(self, request: web.Request, name: str, status: int = 200,
             **values: Any) -> web.Response:
        session = request.get(SESSION)
        html = self.templates.get_template(name).render(
            user=session.user if session else "", csrf=session.csrf if session else "",
            path=request.path, done=DONE.get(request.query.get("done", ""), ""), **values)
        return web.Response(text=html, status=status, content_type="text/html")

    def message(self, request: web.Request, status: int, title: str, text: str) -> web.Response:
        return self.page(request, "message.html.j2", status, title=title, text=text)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._check(request, handler)
        except web.HTTPException as exc:
            _secure(exc.headers, request)
            raise
        _secure(response.headers, request)
        return response

    async def _check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(f"{PREFIX}/static/") or path == f"{PREFIX}/login":
            return await handler(request)
        token = request.cookies.get(COOKIE, "")
        session = self.console.db.session(token, self.console.clock()) if token else None
        if session is None:
            if request.method in ("GET", "HEAD"):
                target = urllib.parse.quote(request.path_qs, safe="")
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={target}")
            return self.message(request, 403, "需要登录", "登录已过期，请重新登录后再试。")
        request[SESSION] = session
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("Origin")
            if origin and urllib.parse.urlsplit(origin).netloc != request.host:
                return self.message(request, 403, "拒绝", "请求来自别的网站。")
            sent = request.headers.get("X-CSRF-Token")
            if sent is None:
                sent = str((await request.post()).get("csrf", ""))
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                return self.message(request, 403, "拒绝", "这个操作缺少有效的 CSRF 令牌"
                                    "（页面可能已过期），请刷新页面后重试。")
        return await handler(request)

    @staticmethod
    def _user(request: web.Request) -> str:
        return request[SESSION].user

    # ------------------------------------------------------------------ login

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/inbox")

    def _login_form(self, request: web.Request, status: int = 200, error: str = ""
                    ) -> web.Response:
        token = secrets.token_urlsafe(24)
        response = self.page(request, "login.html.j2", status, error=error, login_token=token,
                             next=_local(request.query.get("next", "")))
        response.set_cookie(LOGIN_COOKIE, token, path=f"{PREFIX}/login", httponly=True,
                            samesite="Strict", secure=_https(request))
        return response

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return self._login_form(request)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        sent = str(form.get("login_token", ""))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return self._login_form(request, 403, "登录页面已过期，请重新输入。")
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        address = request.remote or "?"
        try:
            token = await self.run(self.console.login, name, password, address)
        except Refused as exc:
            reason = str(exc)
            if reason.startswith("limited:"):
                minutes = reason.split(":", 1)[1]
                return self._login_form(request, 429,
                                        f"登录失败次数太多，请 {minutes} 分钟后再试。")
            return self._login_form(request, 401, "用户名或密码不对。")
        response = web.HTTPSeeOther(_local(str(form.get("next", ""))) or f"{PREFIX}/inbox")
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="Strict",
                            secure=_https(request))
        response.del_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(COOKIE, "")
        await self.run(self.console.db.close_session, token)
        self.console.db.audit(self.console.clock(), self._user(request), "logout", "")
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    # ------------------------------------------------------------------ inbox

    async def inbox(self, request: web.Request, error: str = "",
                    status: int = 200) -> web.Response:
        days = _choice(request.query.get("days"), INBOX_DAYS, 30)
        by = "newest" if request.query.get("sort") == "newest" else "frequent"
        groups = await self.run(self.console.inbox, days, by)
        return self.page(request, "inbox.html.j2", status, groups=groups, days=days, by=by,
                         day_choices=INBOX_DAYS, error=error,
                         attached=request.query.get("entry", ""))

    async def attach(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        entry, text = str(form.get("entry", "")), str(form.get("text", ""))
        keys = [str(k) for k in form.getall("key", [])]
        try:
            await self.run(self.console.attach, self._user(request), entry, text, keys)
        except Refused as exc:
            return await self.inbox(request, str(exc), 422)
        query = urllib.parse.urlencode({"done": "attached", "entry": entry})
        raise web.HTTPSeeOther(f"{PREFIX}/inbox?{query}")

    async def dismiss(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        keys = [str(k) for k in form.getall("key", [])]
        try:
            await self.run(self.console.dismiss, self._user(request), keys,
                           str(form.get("reason", "")), str(form.get("text", "")))
        except Refused as exc:
            return await self.inbox(request, str(exc), 422)
        raise web.HTTPSeeOther(f"{PREFIX}/inbox?done=dismissed")

    # ------------------------------------------------------------------ entries

    async def entries(self, request: web.Request) -> web.Response:
        q = request.query
        wanted = {k: q.get(k, "").strip() for k in ("q", "topic", "basis", "concept", "status")}

        def listing() -> dict[str, Any]:
            state = self.console.state()
            conflicts = self.console.draft.sync()
            pending = set(self.console.draft.pending())
            today = dt.datetime.fromtimestamp(self.console.clock(), dt.UTC).date()
            rows = []
            kb = state.kb
            for rel, entry in (self.console.entries().values() if kb else []):
                fresh = judge(entry, today)
                flags = {"expired": fresh.expired, "old": fresh.old and not fresh.expired,
                         "missing_en": not entry.has_english, "unpublished": rel in pending}
                rows.append(_Row(rel, entry, flags))
            needle = wanted["q"].lower()
            if needle:
                rows = [r for r in rows if needle in " ".join(
                    (r.entry.id, r.entry.title, r.entry.title_en, *r.entry.questions,
                     *r.entry.questions_en, r.entry.answer)).lower()]
            for key in ("topic", "basis"):
                if wanted[key]:
                    rows = [r for r in rows if getattr(r.entry, key) == wanted[key]]
            if wanted["concept"]:
                members: set[str] = set()
                for concept in (kb.concepts if kb else ()):
                    if concept.id == wanted["concept"]:
                        members |= set(concept.general)
                        members |= {e for s in concept.senses for e in s.entries}
                rows = [r for r in rows if wanted["concept"] in r.entry.concepts
                        or r.entry.id in members]
            if wanted["status"] == "stale":
                rows = [r for r in rows if r.flags["expired"] or r.flags["old"]]
            elif wanted["status"]:
                rows = [r for r in rows if r.flags.get(wanted["status"])]
            entries = [e for _, e in self.console.entries().values()]
            return {
                "rows": rows, "state": state, "conflicts": conflicts, "top_files": TOP_FILES,
                "topics": sorted({e.topic for e in entries}),
                "bases": list(BASIS_LABELS.items()),
                "concepts": [c.id for c in kb.concepts] if kb else [],
                "pending": sorted(pending), "total": len(entries),
            }

        data = await self.run(listing)
        return self.page(request, "entries.html.j2", wanted=wanted, **data)

    async def edit(self, request: web.Request) -> web.Response:
        try:
            rel = safe_rel(request.query.get("path", ""))
        except ValueError:
            return self.message(request, 404, "找不到", "没有这个知识文件。")
        text = await self.run(self.console.draft.read, rel)
        if text is None:
            return self.message(request, 404, "找不到", "草稿里没有这个文件（可能刚被删除）。")
        raw = request.query.get("raw") == "1" or not rel.endswith(".md")
        form = None if raw else EntryForm.parse(text)
        return await self._editor(request, rel, text, form, base=self.console.remember(text))

    async def new(self, request: web.Request) -> web.Response:
        question = " ".join(request.query.get("question", "").split())[:300]
        form = EntryForm()
        if question:
            if language(question) == "en":
                form.title_en, form.questions_en = question, [question]
            else:
                form.title, form.questions = question, [question]
        return await self._editor(request, "", form.compose(), form, base="", new=True)

    async def _editor(self, request: web.Request, rel: str, text: str,
                      form: EntryForm | None, base: str, new: bool = False,
                      status: int = 200, problems: list | None = None, conflict: str = "",
                      error: str = "") -> web.Response:
        def gather() -> dict[str, Any]:
            state = self.console.state()
            shown = problems if problems is not None else [
                p for p in state.problems if p.path == rel]
            preview = {}
            if form is not None and state.kb is not None and problems is None and not new:
                preview = self.console.preview(state.kb, form.id)
            live = self.console.draft.read_live(rel) if rel else None
            folders = sorted({r.split("/")[1] for r in self.console.draft.files()
                              if r.startswith("entries/") and r.count("/") >= 2})
            return {"problems": shown, "preview": preview,
                    "unpublished": unified_diff(live, text, rel, ("published", "draft"))
                    if rel and live != text else "",
                    "folders": folders,
                    "concept_ids": [c.id for c in state.kb.concepts] if state.kb else []}

        data = await self.run(gather)
        return self.page(request, "edit.html.j2", status, rel=rel, text=text, form=form,
                         base=base, new=new, conflict=conflict, error=error,
                         bases=basis_choices(), folder=request.query.get("folder", ""), **data)

    def _posted(self, data: Any) -> tuple[EntryForm | None, str]:
        """The form (or raw text) an edit page posted, and the file text it makes."""
        if data.get("mode") == "raw":
            text = str(data.get("text", "")).replace("\r\n", "\n")
            return None, text if text.endswith("\n") else text + "\n"
        form = EntryForm.from_fields(lambda n: str(data.get(n, "")),
                                     lambda n: [str(v) for v in data.getall(n, [])])
        return form, form.compose()

    def _target(self, data: Any, form: EntryForm | None) -> str:
        if data.get("new") != "1":
            return safe_rel(str(data.get("path", "")))
        folder = str(data.get("folder", "")).strip()
        entry_id = form.id if form else ""
        if not _FOLDER.match(folder):
            raise ValueError("请选择或填写文件夹名（小写字母、数字和 -）。")
        if not _ID.match(entry_id):
            raise ValueError("id 必须是 2–40 个小写字母、数字或 -。")
        return f"entries/{folder}/{entry_id}.md"

    async def save(self, request: web.Request) -> web.StreamResponse:
        data = await request.post()
        form, text = self._posted(data)
        new = data.get("new") == "1"
        base = str(data.get("base", ""))
        try:
            rel = self._target(data, form)
        except ValueError as exc:
            return await self._editor(request, "", text, form, base, new, 422, problems=[],
                                      error=str(exc))
        delete = data.get("action") == "delete" and not new
        try:
            saved = await self.run(self.console.save, self._user(request), rel,
                                   None if delete else text, base)
        except Conflict as exc:
            opened = self.console.recall(base) if base else ""
            other = unified_diff(opened, exc.current, rel, ("opened", "now"))
            return await self._editor(request, rel if not new else "", text, form,
                                      self.console.remember(exc.current), new, 409,
                                      problems=[], conflict=other or "(the file was removed)")
        if saved.errors:
            return await self._editor(request, rel if not new else "", text, form, base, new,
                                      422, problems=saved.errors + [
                                          p for p in saved.checked.problems
                                          if p.severity != "error" and p.path == rel])
        if delete:
            raise web.HTTPSeeOther(f"{PREFIX}/entries?done=deleted")
        query = urllib.parse.urlencode({"path": rel, "done": "saved",
                                        **({"raw": "1"} if form is None else {})})
        raise web.HTTPSeeOther(f"{PREFIX}/edit?{query}")

    async def check(self, request: web.Request) -> web.Response:
        data = await request.post()
        form, text = self._posted(data)
        try:
            rel = self._target(data, form)
        except ValueError as exc:
            return self.page(request, "check.html.j2", problems=[], preview={},
                             error=str(exc), rel="")

        def run() -> tuple[list, dict[str, str]]:
            saved = self.console.check_text(rel, text)
            preview = {}
            if form is not None and saved.checked.kb is not None:
                preview = self.console.preview(saved.checked.kb, form.id)
            shown = saved.errors + [p for p in saved.checked.problems
                                    if p.severity != "error" and p.path == rel]
            return shown, preview

        problems, preview = await self.run(run)
        return self.page(request, "check.html.j2", problems=problems, preview=preview,
                         error="", rel=rel)

    async def conflict(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        try:
            rel = safe_rel(str(form.get("path", "")))
        except ValueError:
            return self.message(request, 404, "找不到", "没有这个知识文件。")
        await self.run(self.console.resolve, self._user(request), rel,
                       form.get("take") == "server")
        raise web.HTTPSeeOther(f"{PREFIX}/entries?done=resolved")

    # ------------------------------------------------------------------ try it

    async def try_it(self, request: web.Request) -> web.Response:
        question = request.query.get("q", "").strip()[:500]
        source = "draft" if request.query.get("source") == "draft" else "live"
        tried, error = None, ""
        if question:
            try:
                tried = await self.run(self.console.try_it, question, source)
            except Refused as exc:
                error = str(exc)
        return self.page(request, "try.html.j2", question=question, source=source,
                         tried=tried, error=error)

    # ------------------------------------------------------------------ publish

    async def publish_page(self, request: web.Request) -> web.Response:
        def gather() -> dict[str, Any]:
            console = self.console
            conflicts = console.draft.sync()
            state = console.state()
            plan = console.publisher.plan(state)
            files = [(rel, unified_diff(console.draft.read_live(rel), console.draft.read(rel),
                                        rel, ("published", "draft"))) for rel in plan.files]
            return {"conflicts": conflicts, "state": state, "plan": plan, "files": files,
                    "published": console.publisher.published_figures(),
                    "versions": console.publisher.versions(),
                    "dev_set": bool(console.publisher.cases)}

        return self.page(request, "publish.html.j2", **(await self.run(gather)))

    async def publish(self, request: web.Request) -> web.Response:
        form = await request.post()
        note = " ".join(str(form.get("note", "")).split())[:300]
        result = await self.run(self.console.publisher.publish, self._user(request), note)
        return self.page(request, "result.html.j2", 200 if result.ok else 409, result=result)

    async def rollback(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            n = int(str(form.get("version", "")))
        except ValueError:
            return self.message(request, 404, "找不到", "没有这个版本。")
        result = await self.run(self.console.publisher.rollback, n, self._user(request))
        return self.page(request, "result.html.j2", 200 if result.ok else 409, result=result)

    # ------------------------------------------------------------------ dashboard and audit

    async def dashboard(self, request: web.Request) -> web.Response:
        days = _choice(request.query.get("days"), (7, 14, 30, 90), 14)

        def gather() -> dict[str, Any]:
            console = self.console
            board = dashboard.build(console.store, console.journal,
                                    dict(console.service.current.kb.entries), days,
                                    console.clock())
            stats = AdminConsole(console.service, console.store, console.clock).stats(
                board.since_day)
            return {"board": board, "stats_text": stats}

        return self.page(request, "dashboard.html.j2", days=days, chart=dashboard,
                         **(await self.run(gather)))

    async def audit(self, request: web.Request) -> web.Response:
        action = request.query.get("action", "")[:40]
        records = await self.run(self.console.db.audit_log, 300, action)
        return self.page(request, "audit.html.j2", records=records, action=action)


@dataclass(frozen=True)
class _Row:
    rel: str
    entry: Entry
    flags: dict[str, bool]


def _secure(headers: Any, request: web.Request) -> None:
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith(f"{PREFIX}/static/"):
        headers["Cache-Control"] = "no-store"


def _https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"


def _local(target: str) -> str:
    """Keep a redirect inside the console (no other host, no scheme-relative //)."""
    return target if target.startswith(f"{PREFIX}/") and not target.startswith("//") else ""


def _choice(value: str | None, allowed: tuple[int, ...], default: int) -> int:
    try:
        number = int(value or default)
    except ValueError:
        return default
    return number if number in allowed else default
