"""The channel-neutral pieces: rate limits, admin console, message splitting, button picks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.channels.admin import AdminConsole
from bot.channels.render import split_message
from bot.dialogue.engine import Engine
from bot.store.base import Unanswered
from bot.store.ratelimit import RateLimiter
from bot.store.sqlite import SQLiteStore


def test_rate_limiter_slides_its_window() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 60, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")  # per key
    now[0] = 60.0
    assert limiter.allow("a")
    assert RateLimiter(0, 60).allow("x")  # 0 means no limit


def test_split_keeps_paragraphs_whole_and_measures_bytes_when_asked() -> None:
    text = "\n\n".join(["甲" * 30, "乙" * 30, "丙" * 30])
    parts = split_message(text, 70)
    assert parts == ["甲" * 30 + "\n\n" + "乙" * 30, "丙" * 30]
    by_bytes = split_message(text, 100, lambda s: len(s.encode()))
    assert by_bytes == ["甲" * 30, "乙" * 30, "丙" * 30]
    # A paragraph longer than the limit loses its tags and is cut outside entities.
    long = "<b>" + "字" * 10 + "&amp;" + "字" * 10 + "</b>"
    cut = split_message(long, 12)
    assert "".join(cut) == "字" * 10 + "&amp;" + "字" * 10
    assert all("&" not in p or "&amp;" in p for p in cut) and all(len(p) <= 12 for p in cut)


def test_button_pick_applies_only_to_the_pending_question(engine: Engine, key) -> None:
    assert engine.choose(key, "getidian.enterprise") is None  # nothing pending
    engine.reply(key, "个体店怎么开")
    assert engine.choose(key, "no-such-option") is None
    reply = engine.choose(key, "getidian.enterprise")
    assert reply is not None and reply.entry_id == "getidian-enterprise"
    assert engine.choose(key, "getidian.enterprise") is None  # used up


def test_admin_stats_and_unanswered_report_the_store(service, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    day = 1_780_000_000.0
    for kind in ("answer", "answer", "clarify", "fallback"):
        store.log_reply(day, "telegram", kind, None, 0.5)
    assert store.record_feedback(day, "telegram", "u", "zhike-what", True)
    # One vote per user and entry: pressing again changes the vote, it does not add one.
    assert not store.record_feedback(day, "telegram", "u", "zhike-what", True)
    store.record_feedback(day, "telegram", "v", "zhike-what", False)
    for i, text in enumerate(("抖店怎么开", "抖店怎么开", "红烧肉")):
        store.log_unanswered(Unanswered(day + i, "telegram", "c", "u", text))
    console = AdminConsole(service, store, clock=lambda: day + 3600)
    stats = console.run("stats")
    assert "回答：2" in stats and "反问澄清：1" in stats and "无法回答：1" in stats
    assert "👍 1　👎 1" in stats and "1. 抖店怎么开（2 次）" in stats
    assert "用法" in console.run("stats", "yesterday")
    assert console.run("stats", "2099-01-01").count("：0") == 3
    listing = console.run("unanswered", "2")
    assert listing.startswith("最近 2 个未回答的问题")
    assert listing.index("红烧肉") < listing.index("抖店怎么开") and listing.count("抖店") == 1


def test_log_lines_mask_secrets_from_the_environment_and_dotenv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from bot.ops.logsafe import RedactingFormatter
    from bot.settings import Environment

    # A secret set only in .env is masked as well as one in the process environment.
    (tmp_path / ".env").write_text(f"WECOM_APP_AES_KEY={'k' * 43}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:ABCDEF")
    monkeypatch.setenv("BOT_DATA_DIR", "/var/lib/bot")
    env = Environment.load()
    assert env.secrets() == ["k" * 43, "123:ABCDEF"]
    formatter = RedactingFormatter("%(message)s", env.secrets())
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1,
                               "POST %s", ("https://api.telegram.org/bot123:ABCDEF/getMe",), None)
    assert formatter.format(record) == "POST https://api.telegram.org/bot***/getMe"


def test_json_log_lines_are_objects_with_secrets_masked() -> None:
    import json
    import logging

    from bot.ops.logsafe import RedactingFormatter

    formatter = RedactingFormatter("%(message)s", ["s3cret-value"], as_json=True)
    record = logging.LogRecord("bot", logging.WARNING, __file__, 1, "token %s", ("s3cret-value",),
                               None)
    line = json.loads(formatter.format(record))
    assert line["level"] == "WARNING" and line["logger"] == "bot"
    assert line["message"] == "token ***"


def test_sqlite_store_keeps_history_only_for_the_retention_period(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite", retention=100.0)
    store.log_unanswered(Unanswered(1000.0, "wecom", "c", "u", "旧问题"))
    store.record_feedback(1000.0, "wecom", "u", "zhike-what", True)
    store.log_reply(1050.0, "wecom", "answer", None, 0.5)
    assert [u.text for u in store.latest_unanswered(5)] == ["旧问题"]
    # A reply a minute or more after the last trim trims what is too old.
    store.log_reply(1200.0, "wecom", "answer", None, 0.5)
    assert store.latest_unanswered(5) == [] and store.feedback_counts(0) == (0, 0)
    assert store.reply_counts(0) == {"answer": 1}
