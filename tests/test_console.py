"""The knowledge console over real HTTP on 127.0.0.1: login, limits, CSRF, concurrent edits,
validation, publishing and rollback, the dashboard's numbers; and its parts on their own.

The console runs over a private copy of the knowledge (own_service) with the bot's real
engine writing to the store the console reads, as `python -m bot serve` wires them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from bot import console as console_package
from bot.channels.wecom.crypto import WeComCrypto
from bot.console.auth import hash_password, parse_users, verify_password
from bot.console.core import LOGIN_LIMIT, Console
from bot.console.files import EntryForm
from bot.console.inbox import group_downvotes, group_unanswered, similarity
from bot.console.publish import DEV_SET, CachedEncoder
from bot.console.web import COOKIE, ConsoleRoutes, telegram_html
from bot.dialogue.engine import ConversationKey, Engine
from bot.evaluation import load_cases, select
from bot.kb.service import KnowledgeService
from bot.ops import server as http
from bot.settings import Environment, Settings
from bot.store.base import Unanswered
from bot.store.redis import RedisStore
from bot.store.resilient import ResilientStore
from bot.store.sqlite import SQLiteStore
from testing.serve import eventually, free_port, start_serve, stop_serve
from tests.test_replicas import Replica, redis_url  # noqa: F401 - the Redis server fixture
from tests.test_wecom import BOT_KEY

USERS = {"editor": "correct horse battery", "reviewer": "staple of the month"}
# Few iterations keep the tests quick; production hashes use 600,000 (auth.DEFAULT_ITERATIONS).
HASHES = {name: hash_password(password, iterations=1000) for name, password in USERS.items()}
ZHIKE = "entries/zhike/zhike-what.md"
ASKED = "退休老人做手工能在小红书开店吗"  # not covered by the knowledge as it ships
ENTRY = "zero-fan-open-shop"  # where a maintainer would add it


@pytest.fixture(scope="session")
def dev_vectors(service: KnowledgeService, shared_data: Path) -> None:
    """Embed the development set's questions into the session's embedding cache once.

    Every console test copies that cache (own_service), so its publishes score the
    development set without embedding it again; in production the console's own background
    scoring does the same at start.
    """
    cases = select(load_cases(DEV_SET), "report")
    normalise = service.current.normalizer
    texts = sorted({n for case in cases for turn in case.turns if (n := normalise(turn))})
    CachedEncoder(service.encoder, shared_data / "index" / "embeddings.sqlite").encode(
        texts, "query")


@dataclass
class Site:
    """A console served on 127.0.0.1 beside the bot's engine, sharing its store."""

    url: str
    console: Console
    store: ResilientStore
    engine: Engine
    service: KnowledgeService

    def ask(self, text: str, user: str = "seller-1", channel: str = "telegram") -> object:
        return self.engine.reply(ConversationKey(channel, "chat-1", user), text)


class Server:
    """Run an aiohttp application on its own event loop thread (the test thread stays free
    for a blocking client or a browser)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    def __enter__(self) -> str:
        self.thread.start()

        async def start() -> web.AppRunner:
            runner = http.runner(self.app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            return runner

        self.runner = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(name="site")
def site_fixture(dev_vectors: None, own_service: KnowledgeService,
                 tmp_path: Path) -> Iterator[Site]:
    store = ResilientStore(SQLiteStore(tmp_path / "bot.sqlite"))
    settings = Settings(data_dir=tmp_path / "data", knowledge_dir=own_service.knowledge_dir)
    console = Console(tmp_path / "data" / "console", dict(HASHES), own_service, store, settings)
    app = http.application(ConsoleRoutes(console, background=False))
    with Server(app) as url:
        yield Site(url, console, store, Engine(own_service, store, settings), own_service)


def client(site: Site) -> httpx.Client:
    return httpx.Client(base_url=site.url, follow_redirects=False, timeout=120)


def login(site: Site, name: str = "editor", password: str | None = None) -> httpx.Client:
    """A client with a session (the login page's token, then the form)."""
    web_client = client(site)
    response = post_login(web_client, name, USERS[name] if password is None else password)
    assert response.status_code == 303, response.text
    return web_client


def post_login(web_client: httpx.Client, name: str, password: str) -> httpx.Response:
    page = web_client.get("/admin/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    return web_client.post("/admin/login", data={"login_token": token[1], "name": name,
                                                 "password": password})


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found[1]


def field(page: httpx.Response, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    assert found, name
    return found[1]


def edit_fields(site: Site, rel: str, page: httpx.Response) -> dict[str, str]:
    """What the edit page would post for a file, unchanged."""
    form = EntryForm.parse(site.console.draft.read(rel) or "")
    assert form is not None
    data = {"csrf": csrf_of(page), "base": field(page, "base"), "path": rel, "new": "0",
            "mode": "form", "action": "save", "id": form.id, "title": form.title,
            "questions": "\n".join(form.questions), "title_en": form.title_en,
            "questions_en": "\n".join(form.questions_en), "topic": form.topic,
            "concepts": ", ".join(form.concepts), "basis": form.basis, "as_of": form.as_of,
            "valid_from": form.valid_from, "valid_until": form.valid_until,
            "related": ", ".join(form.related), "answer": form.answer,
            "answer_en": form.answer_en}
    return data


def sources(form: EntryForm) -> list[tuple[str, str]]:
    rows = []
    for source in form.sources:
        rows += [("source_ref", source.ref), ("source_by", source.by),
                 ("source_date", source.date)]
    return rows


def multipart(data: dict[str, str], extra: list[tuple[str, str]]) -> dict:
    """Post fields as the browser's multipart form does (httpx: files= makes multipart)."""
    items = [*data.items(), *extra]
    return {"files": [(k, (None, v)) for k, v in items]}


# ---------------------------------------------------------------------- access


def test_no_session_gets_the_login_page_with_a_strict_policy(site: Site) -> None:
    web_client = client(site)
    response = web_client.get("/admin/inbox")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")
    page = web_client.get(response.headers["location"])
    assert page.status_code == 200 and 'name="password"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert web_client.get("/admin/static/console.js").status_code == 200
    # A change without a session is refused, not performed.
    assert web_client.post("/admin/inbox/dismiss", data={"reason": "x"}).status_code == 403


def test_a_wrong_password_is_refused_then_logins_are_limited(site: Site) -> None:
    web_client = client(site)
    for _ in range(LOGIN_LIMIT):
        response = post_login(web_client, "editor", "not the password")
        assert response.status_code == 401 and "用户名或密码不对" in response.text
        assert COOKIE not in response.cookies
    # Now even the right password waits: the limit is per name and per address.
    response = post_login(web_client, "editor", USERS["editor"])
    assert response.status_code == 429 and "次数太多" in response.text
    assert COOKIE not in response.cookies
    response = post_login(web_client, "nobody", "guess")
    assert response.status_code == 429
    actions = [r.action for r in site.console.db.audit_log()]
    assert actions.count("login_failed") == LOGIN_LIMIT


def test_the_session_cookie_is_httponly_and_strict(site: Site) -> None:
    web_client = client(site)
    response = post_login(web_client, "editor", USERS["editor"])
    cookie = next(v for k, v in response.headers.multi_items()
                  if k == "set-cookie" and v.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert web_client.get("/admin/inbox").status_code == 200
    token = csrf_of(web_client.get("/admin/inbox"))
    assert web_client.post("/admin/logout", data={"csrf": token}).status_code == 303
    assert web_client.get("/admin/inbox").status_code == 303  # the session is gone


def test_a_change_without_the_csrf_token_is_refused(site: Site) -> None:
    site.ask("小红书能不能卖二手手机")
    web_client = login(site)
    page = web_client.get("/admin/inbox")
    assert "小红书能不能卖二手手机" in page.text
    key = field(page, "key")
    form = {"key": key, "reason": "不是平台规则问题", "text": "小红书能不能卖二手手机"}
    assert web_client.post("/admin/inbox/dismiss", data=form).status_code == 403
    assert web_client.post("/admin/inbox/dismiss",
                           data={**form, "csrf": "forged"}).status_code == 403
    assert web_client.post("/admin/inbox/dismiss", data=form,
                           headers={"X-CSRF-Token": "forged"}).status_code == 403
    # A page of another site posting with the right token (it cannot know it) is refused too.
    assert web_client.post("/admin/inbox/dismiss", data={**form, "csrf": csrf_of(page)},
                           headers={"Origin": "http://evil.example"}).status_code == 403
    assert site.console.db.decisions() == {}
    done = web_client.post("/admin/inbox/dismiss", data={**form, "csrf": csrf_of(page)})
    assert done.status_code == 303
    assert site.console.db.decisions()[key].reason == "不是平台规则问题"
    assert "小红书能不能卖二手手机" not in web_client.get("/admin/inbox").text


# ---------------------------------------------------------------------- editing


def test_a_concurrent_edit_is_refused_and_shows_the_other_change(site: Site) -> None:
    alice, bob = login(site, "editor"), login(site, "reviewer")
    page_a = alice.get("/admin/edit", params={"path": ZHIKE})
    page_b = bob.get("/admin/edit", params={"path": ZHIKE})
    assert page_a.status_code == page_b.status_code == 200
    form = EntryForm.parse(site.console.draft.read(ZHIKE) or "")
    assert form is not None
    data_a = edit_fields(site, ZHIKE, page_a)
    data_a["questions"] += "\n直客经理是干什么的"
    saved = alice.post("/admin/edit", **multipart(data_a, sources(form)))
    assert saved.status_code == 303, saved.text[:2000]
    data_b = edit_fields(site, ZHIKE, page_b)
    data_b["base"] = field(page_b, "base")  # what bob opened, before alice's save
    data_b["answer"] += "\n\n（鲍勃补充的一句话）"
    refused = bob.post("/admin/edit", **multipart(data_b, sources(form)))
    assert refused.status_code == 409
    assert "没有保存" in refused.text and "+  - 直客经理是干什么的" in refused.text
    assert "鲍勃补充的一句话" in refused.text  # bob's text is kept in the form
    on_disk = site.console.draft.read(ZHIKE) or ""
    assert "直客经理是干什么的" in on_disk and "鲍勃补充的一句话" not in on_disk
    # The served knowledge is untouched until a publish.
    assert "直客经理是干什么的" not in (site.service.knowledge_dir / ZHIKE).read_text()
    assert [r.action for r in site.console.db.audit_log(action="edit")] == ["edit"]


def test_a_broken_edit_is_shown_at_its_line_and_not_written(site: Site) -> None:
    web_client = login(site)
    page = web_client.get("/admin/edit", params={"path": ZHIKE})
    before = site.console.draft.read(ZHIKE)
    form = EntryForm.parse(before or "")
    assert form is not None
    data = edit_fields(site, ZHIKE, page)
    data["questions"] = "直客是官方的人吗\n直客算是销售吗"
    data["related"] += ", no-such-entry"
    refused = web_client.post("/admin/edit", **multipart(data, sources(form)))
    assert refused.status_code == 422
    problem = re.search(r"entries/zhike/zhike-what\.md:4: [^<]*4[^<]*", refused.text)
    assert problem, refused.text[:3000]  # questions start on line 4 of the file
    assert site.console.draft.read(ZHIKE) == before
    # The live check says the same without saving anything.
    checked = web_client.post("/admin/check", **multipart(data, sources(form)),
                              headers={"X-CSRF-Token": data["csrf"]})
    assert checked.status_code == 200 and problem[0] in checked.text
    data["questions"] += "\n直客是小红书员工还是代理商\n直客的考核是什么"
    checked = web_client.post("/admin/check", **multipart(data, sources(form)),
                              headers={"X-CSRF-Token": data["csrf"]})
    assert "no-such-entry" in checked.text and problem[0] not in checked.text
    assert site.console.draft.read(ZHIKE) == before


def test_telegram_previews_keep_only_telegram_tags() -> None:
    shown = telegram_html("<b>标题 &lt;b&gt;</b>\n<i>依据</i><script>x</script>")
    assert shown == "<b>标题 &lt;b&gt;</b>\n<i>依据</i>&lt;script&gt;x&lt;/script&gt;"


def test_a_new_entry_starts_from_an_inbox_question(site: Site) -> None:
    web_client = login(site)
    page = web_client.get("/admin/new", params={"question": ASKED})
    assert page.status_code == 200 and f'name="title" value="{ASKED}"' in page.text
    data = {"csrf": csrf_of(page), "base": "", "path": "", "new": "1", "mode": "form",
            "action": "save", "folder": "shop", "id": "handmade-shop", "title": ASKED,
            "questions": "\n".join((ASKED, "卖手工艺品要开什么店", "手工作品能在小红书上卖吗",
                                    "自己做的东西怎么卖")),
            "topic": "开店与账号", "concepts": "", "basis": "服务商或从业者经验",
            "as_of": "2025", "valid_from": "", "valid_until": "", "related": ENTRY,
            "answer": "可以。先按“刚注册的号能不能开店”里的步骤开个人店。",
            "title_en": "Can I sell things I make myself?",
            "questions_en": "can I sell handmade goods\nsell my own crafts on xiaohongshu",
            "answer_en": "Yes. Open a personal shop as described in the related question."}
    source = [("source_ref", "seeds/000_24e7f4c5401c0bd2.txt"), ("source_by", ""),
              ("source_date", "undated")]
    saved = web_client.post("/admin/edit", **multipart(data, source))
    assert saved.status_code == 303, saved.text[:3000]
    rel = "entries/shop/handmade-shop.md"
    assert "handmade-shop.md" in urllib.parse.unquote(saved.headers["location"])
    text = site.console.draft.read(rel) or ""
    assert text.startswith("---\nid: handmade-shop\n") and "## English" in text
    assert not (site.service.knowledge_dir / rel).exists()  # not served before a publish
    again = web_client.post("/admin/edit", **multipart(data, source))
    assert again.status_code == 409  # the same new file twice: the second finds the first
    plan = web_client.get("/admin/publish")
    assert "新增 <strong>1</strong>：handmade-shop" in plan.text
    assert [r.action for r in site.console.db.audit_log()][:1] == ["create"]


def test_user_text_is_escaped_everywhere(site: Site) -> None:
    site.ask('<script>alert("x")</script> 小红书能卖二手手机吗')
    web_client = login(site)
    page = web_client.get("/admin/inbox")
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    tried = web_client.get("/admin/try", params={"q": "<img src=x onerror=alert(1)>"})
    assert "<img src=x" not in tried.text and "&lt;img src=x" in tried.text


# ---------------------------------------------------------------------- publish


def test_publish_swaps_and_rollback_returns_to_any_version(site: Site) -> None:
    question = "小红书能不能卖二手手机"
    assert site.ask(question).kind == "fallback"  # type: ignore[attr-defined]
    web_client = login(site)
    page = web_client.get("/admin/inbox")
    entry = re.search(r'name="entry" value="([^"]+)"', page.text)
    assert entry
    attach = web_client.post("/admin/inbox/attach", data={
        "csrf": csrf_of(page), "entry": entry[1], "text": question,
        "key": field(page, "key")})
    assert attach.status_code == 303
    page = web_client.get("/admin/publish")
    assert entry[1] in page.text and "检查并发布" in page.text
    published = web_client.post("/admin/publish", data={"csrf": csrf_of(page), "note": "二手"})
    assert published.status_code == 200, published.text[:3000]
    assert "已发布：版本 2" in published.text and "测评变化" in published.text
    reply = site.ask(question, user="seller-2")
    assert reply.kind == "answer" and reply.entry_id == entry[1]  # type: ignore[attr-defined]
    versions = site.console.publisher.versions()
    assert [v.n for v in versions] == [2, 1] and versions[0].who == "editor"
    assert versions[0].changed == [entry[1]]
    rolled = web_client.post("/admin/rollback", data={"csrf": csrf_of(page), "version": "1"})
    assert rolled.status_code == 200 and "已回滚：版本 3" in rolled.text
    assert site.ask(question, user="seller-3").kind == "fallback"  # type: ignore[attr-defined]
    assert question not in (site.service.knowledge_dir / "entries").joinpath(
        *Path(site.console.entries()[entry[1]][0]).parts[1:]).read_text()
    actions = [r.action for r in site.console.db.audit_log()]
    assert {"attach", "publish", "rollback"} <= set(actions)


def test_dashboard_shows_the_numbers_of_stats(site: Site) -> None:
    now = time.time()
    for days_ago, kind in ((0, "answer"), (0, "fallback"), (1, "answer"), (2, "clarify")):
        site.store.log_reply(now - days_ago * 86400, "wecom", kind, None, 0.5)
    site.ask("直客是什么")
    site.store.record_feedback(now, "telegram", "u1", "zhike-what", False)
    web_client = login(site)
    page = web_client.get("/admin/dashboard", params={"days": 7})
    assert page.status_code == 200
    counts = site.store.reply_counts(now - 6 * 86400 - 86400)
    total = re.search(r'id="total">(\d+)<', page.text)
    assert total and int(total[1]) == sum(counts.values()) == 5
    assert "👎 1" in page.text and "<svg" in page.text and "wecom" in page.text
    stats = re.search(r'<pre id="stats-text">(.*?)</pre>', page.text, re.S)
    assert stats and "：3" in stats[1] and "👎 1" in stats[1]  # /stats: 3 answers, one 👎


# ---------------------------------------------------------------------- the parts


def test_every_entry_round_trips_through_the_form(knowledge_copy: Path) -> None:
    for path in sorted((knowledge_copy / "entries").rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        form = EntryForm.parse(text)
        assert form is not None and form.compose() == text, path


def test_near_duplicate_questions_form_one_group(service: KnowledgeService) -> None:
    asked = [Unanswered(0.5, "telegram", "c", "v", "小红书能不能卖二手手机"),
             Unanswered(1.0, "telegram", "c", "u", "小红书能不能卖二手手机"),
             Unanswered(2.0, "wecom", "c", "u", "小红书能不能卖二手手机？"),
             Unanswered(3.0, "wecom", "c", "u", "小紅書能不能賣二手手機"),
             Unanswered(4.0, "telegram", "c", "u", "小红书可以卖二手手机吗"),
             Unanswered(5.0, "telegram", "c", "u", "薯条怎么退款"),
             Unanswered(6.0, "telegram", "c", "u", "薯条怎么投放")]
    groups = group_unanswered(asked, service.current.normalizer)
    assert [g.count for g in groups] == [5, 1, 1]
    assert groups[0].text == "小红书能不能卖二手手机"
    assert groups[0].channels == ["telegram", "wecom"]
    assert similarity("能卖二手手机吗", "薯条怎么投放") < 0.2
    votes = [(1.0, "telegram", "zhike-what", False), (2.0, "wecom", "zhike-what", False),
             (3.0, "wecom", "zhike-what", True)]
    down = group_downvotes(votes, service.current.kb.entries)
    assert (down[0].count, down[0].up, down[0].key) == (2, 1, "down:zhike-what")


def test_passwords_are_hashed_and_the_setting_checked(run_cli) -> None:
    result = run_cli("console", "hash-password", "--name", "anna", stdin="a long passphrase\n")
    assert result.returncode == 0, result.stderr
    users = parse_users(result.stdout.strip())
    assert "a long passphrase" not in result.stdout
    assert verify_password("a long passphrase", users["anna"])
    assert not verify_password("a long passphras", users["anna"])
    with pytest.raises(ValueError, match="BOT_CONSOLE_USERS"):
        Environment.load({"BOT_CONSOLE_USERS": "anna:plaintext"})
    env = Environment.load({"BOT_CONSOLE_USERS": result.stdout.strip()})
    assert env.BOT_CONSOLE_USERS.startswith("anna:pbkdf2_sha256$600000$")
    off = type("App", (), {"env": Environment.load({})})()
    assert console_package.routes(off) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------------- replicas


def test_two_replicas_serve_what_the_console_published(
        request: pytest.FixtureRequest, dev_vectors: None, knowledge_copy: Path,
        shared_data: Path, tmp_path: Path) -> None:
    """Two `python -m bot serve` processes over one knowledge folder (a shared volume) and one
    Redis: a question asked on B is fixed and published in A's console, and B answers it."""
    url = request.getfixturevalue("redis_url")
    RedisStore(url, 3600).client.flushdb()
    users = f"editor:{HASHES['editor']}"
    replicas = []
    for name in ("a", "b"):
        replica = Replica.__new__(Replica)
        data = tmp_path / name
        (data / "index").mkdir(parents=True)
        shutil.copy(shared_data / "index" / "embeddings.sqlite", data / "index")
        replica.port = free_port()
        replica.process = start_serve(
            data, WECOM_BOT_TOKEN="bot-token", WECOM_BOT_AES_KEY=BOT_KEY,
            HTTP_HOST="127.0.0.1", HTTP_PORT=str(replica.port), REDIS_URL=url,
            BOT_KNOWLEDGE_DIR=str(knowledge_copy), BOT_LOG_LEVEL="INFO",
            BOT_CONSOLE_USERS=users)
        replica.crypto = WeComCrypto("bot-token", BOT_KEY, "")
        replicas.append(replica)
    a, b = replicas
    try:
        a.wait_ready()
        b.wait_ready()
        not_covered = b.say(ASKED, "q1") or ""
        assert "还没有能可靠回答" in not_covered
        console = httpx.Client(base_url=f"http://127.0.0.1:{a.port}", timeout=180)
        assert post_login(console, "editor", USERS["editor"]).status_code == 303
        page = console.get("/admin/inbox")
        assert ASKED in page.text  # B's question, through the shared journal
        attached = console.post("/admin/inbox/attach", data={
            "csrf": csrf_of(page), "entry": ENTRY, "text": ASKED, "key": field(page, "key")})
        assert attached.status_code == 303
        published = console.post("/admin/publish", data={"csrf": csrf_of(page)})
        assert "已发布" in published.text and "已通知其他副本" in published.text, \
            published.text[-3000:]
        eventually(lambda n: "还没有能可靠回答" not in (
            b.say(ASKED, f"q2-{n}", user=f"u{n}") or "还没有能可靠回答"),
            "replica B never served the published version")
    finally:
        code_a, out_a = stop_serve(a.process)
        code_b, out_b = stop_serve(b.process)
    assert (code_a, code_b) == (0, 0), (out_a + out_b)[-3000:]
    assert "after another replica's /reload" in out_b
    assert ASKED in (knowledge_copy / "entries/shop/zero-fan-open-shop.md").read_text()


def test_try_it_explains_a_known_gap(site: Site) -> None:
    web_client = login(site)
    tried = web_client.get("/admin/try", params={"q": "珠宝类目开店保证金是不是比别的类目高"})
    assert tried.status_code == 200
    assert "已知空白：问题最像 gaps.yaml 里的 category-deposit" in tried.text
    assert "已知空白：按经营类目区分的店铺保证金标准" in tried.text  # the gap among the hits


def test_a_maintainer_edits_the_known_gaps_as_text_with_the_same_checks(site: Site) -> None:
    web_client = login(site)
    page = web_client.get("/admin/edit", params={"path": "gaps.yaml"})
    assert page.status_code == 200 and "category-deposit" in page.text
    before = site.console.draft.read("gaps.yaml") or ""
    broken = before.replace("see: [shop-types-deposit, shop-six-types]",
                            "see: [shop-types-deposit, no-such-entry]")
    data = {"csrf": csrf_of(page), "base": field(page, "base"), "path": "gaps.yaml",
            "new": "0", "mode": "raw", "action": "save", "text": broken}
    refused = web_client.post("/admin/edit", **multipart(data, []))
    assert refused.status_code == 422
    line = next(n for n, text in enumerate(broken.splitlines(), start=1)
                if "no-such-entry" in text)
    assert re.search(rf"gaps\.yaml:{line}: [^<]*no-such-entry", refused.text), refused.text[:2000]
    assert site.console.draft.read("gaps.yaml") == before  # nothing written
