"""Telegram end to end: the real python-telegram-bot Application against a fake Bot API server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.faults import huge_post
from bot.channels import telegram as tg
from bot.channels.frontdesk import FrontDesk
from bot.copy import say
from bot.dialogue.engine import Engine
from bot.kb.service import KnowledgeService
from bot.settings import Environment, Settings
from bot.store.ratelimit import RateLimiter
from bot.store.sqlite import SQLiteStore
from testing.fake_telegram import BOT, FakeTelegram, RunningBot, html_problem
from testing.serve import accepts, free_port, start_serve, stop_serve

ADMIN, SELLER, OTHER = 42, 7, 8
GROUP = -1001


def _dialogue(service: KnowledgeService, tmp_path: Path, **settings: object) -> FrontDesk:
    base = replace(Settings(data_dir=tmp_path), **settings)
    store = SQLiteStore(tmp_path / "bot.sqlite")
    limiter = RateLimiter(base.user_rate_limit, base.user_rate_window)
    return FrontDesk(Engine(service, store, base), service, store, limiter,
                     frozenset({str(ADMIN)}))


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram()
    server.url = server.start()
    yield server
    server.stop()


def _config(fake: FakeTelegram, **extra: object) -> tg.TelegramConfig:
    return tg.TelegramConfig(token="123:TEST", base_url=f"{fake.url}/bot", **extra)


@pytest.fixture
def bot(fake: FakeTelegram, service: KnowledgeService, tmp_path: Path) -> Iterator[RunningBot]:
    running = RunningBot(_dialogue(service, tmp_path), _config(fake)).start()
    yield running
    running.close()


def _buttons(call) -> list[tuple[str, str]]:
    markup = call.params.get("reply_markup") or {"inline_keyboard": []}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def _as_message(call) -> dict:
    """The message the bot sent, as the fake returned it (for pressing its buttons)."""
    chat_id = call.params["chat_id"]
    return {"message_id": 1, "date": 1, "from": BOT, "text": call.params["text"],
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "reply_markup": call.params.get("reply_markup")}


def test_private_question_is_answered_with_sources_and_buttons(fake: FakeTelegram,
                                                              bot: RunningBot) -> None:
    commands = fake.wait(lambda: fake.calls_to("setMyCommands"))
    assert [c["command"] for c in commands[0].params["commands"]] == ["ask", "help", "start"]
    fake.message("薯条能带货吗", chat_id=SELLER, user_id=SELLER)
    [sent] = fake.wait_sent(1)
    assert sent.params["parse_mode"] == "HTML" and html_problem(sent.params["text"]) == ""
    assert "内容加热" in sent.params["text"] and "依据" in sent.params["text"]
    assert "reply_parameters" not in sent.params  # private chats are not quoted
    buttons = _buttons(sent)
    assert ("👍 有用", "f:shutiao-no-buyers:1") in buttons
    assert all(len(data.encode()) <= 64 for _, data in buttons)
    fake.press(_as_message(sent), "f:shutiao-no-buyers:1", SELLER)
    answered = fake.wait(lambda: fake.calls_to("answerCallbackQuery"))
    assert answered[0].params["text"] == say("zh", "thanks")
    assert bot.dialogue.store.feedback_counts(0) == (1, 0)


def test_group_answers_only_when_addressed_and_quotes_the_asker(fake: FakeTelegram,
                                                               bot: RunningBot) -> None:
    fake.message("大家好，今天有人去展会吗", chat_id=GROUP, user_id=SELLER, chat_type="supergroup")
    fake.message("/ask@other_bot 薯条能带货吗", chat_id=GROUP, user_id=SELLER,
                 chat_type="supergroup")
    fake.quiet(1.5)
    assert fake.sent(GROUP) == []

    asked = fake.message("/ask@faq_bot 直客是干嘛的", chat_id=GROUP, user_id=SELLER,
                         chat_type="supergroup")
    [first] = fake.wait_sent(1, GROUP)
    assert first.params["reply_parameters"]["message_id"] == asked["message_id"]
    assert "直客" in first.params["text"]

    text = "@faq_bot 号店一体是什么意思"
    mention = fake.message(text, chat_id=GROUP, user_id=OTHER, chat_type="supergroup",
                           entities=[{"type": "mention", "offset": 0, "length": 8}])
    second = fake.wait_sent(2, GROUP)[1]
    assert second.params["reply_parameters"]["message_id"] == mention["message_id"]
    assert "号店一体" in second.params["text"]

    bot_message = {"message_id": 5, "date": 1, "from": BOT, "text": "…",
                   "chat": {"id": GROUP, "type": "supergroup"}}
    fake.message("那号店分离呢", chat_id=GROUP, user_id=OTHER, chat_type="supergroup",
                 reply_to=bot_message)
    third = fake.wait_sent(3, GROUP)[2]
    assert "号店分离" in third.params["text"]


def test_clarifying_buttons_count_only_for_the_asker(fake: FakeTelegram,
                                                     bot: RunningBot) -> None:
    fake.message("/ask 我被限流了", chat_id=GROUP, user_id=SELLER, chat_type="supergroup")
    [question] = fake.wait_sent(1, GROUP)
    buttons = _buttons(question)
    assert len(buttons) == 5 and all(d.startswith(f"c:{SELLER}:xianliu.") or
                                     d == f"c:{SELLER}:none" for _, d in buttons)
    penalty = next(d for _, d in buttons if d.endswith("xianliu.penalty"))

    fake.press(_as_message(question), penalty, OTHER)
    alert = fake.wait(lambda: fake.calls_to("answerCallbackQuery"))[0]
    assert alert.params["text"] == say("zh", "not_yours") and alert.params["show_alert"] is True
    fake.quiet(0.5)
    assert len(fake.sent(GROUP)) == 1 and not fake.calls_to("editMessageText")

    fake.press(_as_message(question), penalty, SELLER)
    edited = fake.wait(lambda: fake.calls_to("editMessageText"))[0]
    assert "✅" in edited.params["text"] and "违规" in edited.params["text"]
    answer = fake.wait_sent(2, GROUP)[1]
    assert "违规积分" in answer.params["text"]


def test_clarification_by_typed_number(fake: FakeTelegram, bot: RunningBot) -> None:
    fake.message("个体店怎么开", chat_id=SELLER, user_id=SELLER)
    [question] = fake.wait_sent(1)
    assert "两种" in question.params["text"]
    fake.message("2", chat_id=SELLER, user_id=SELLER)
    answer = fake.wait_sent(2)[1]
    assert "企业专业号" in answer.params["text"] and "蓝V" in answer.params["text"]


def test_markup_in_a_question_is_delivered_safely(fake: FakeTelegram, bot: RunningBot) -> None:
    fake.message("<b>红烧肉</b><script>alert(1)</script>怎么做", chat_id=ADMIN, user_id=ADMIN)
    [fallback] = fake.wait_sent(1)
    assert html_problem(fallback.params["text"]) == ""
    fake.message("/unanswered", chat_id=ADMIN, user_id=ADMIN)
    listing = fake.wait_sent(2)[1].params["text"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and "<script>" not in listing
    assert html_problem(listing) == ""


def test_a_429_is_retried_and_the_answer_delivered(fake: FakeTelegram, bot: RunningBot) -> None:
    fake.failures["sendMessage"] = [429]
    fake.message("直客是什么", chat_id=SELLER, user_id=SELLER)
    [delivered] = fake.wait_sent(1)
    attempts = fake.calls_to("sendMessage")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].params["text"] == delivered.params["text"]
    fake.quiet(0.5)
    assert len(fake.sent()) == 1  # one refused, one delivered: not answered twice


def test_admin_commands_are_checked_and_reload_reports_changes(
        fake: FakeTelegram, own_service: KnowledgeService, knowledge_copy: Path,
        tmp_path: Path) -> None:
    running = RunningBot(_dialogue(own_service, tmp_path), _config(fake)).start()
    try:
        fake.message("/reload", chat_id=SELLER, user_id=SELLER)
        assert fake.wait_sent(1)[0].params["text"] == "这个命令仅限管理员使用。"
        fake.message("/stats", chat_id=GROUP, user_id=ADMIN, chat_type="supergroup")
        assert "私聊" in fake.wait_sent(1, GROUP)[0].params["text"]

        entry = knowledge_copy / "entries/zhike/zhike-what.md"
        entry.write_text(entry.read_text("utf-8").replace("直客的 KPI", "直客（平台销售）的 KPI"),
                         "utf-8")
        fake.message("/reload", chat_id=ADMIN, user_id=ADMIN)
        report = fake.wait_sent(1, ADMIN)[0].params["text"]
        assert "已重新加载" in report and "修改 1 条：zhike-what" in report

        broken = entry.read_text("utf-8").replace("basis: 服务商或从业者经验", "basis: 传闻")
        entry.write_text(broken, "utf-8")
        fake.message("/reload", chat_id=ADMIN, user_id=ADMIN)
        broken = fake.wait_sent(2, ADMIN)[1].params["text"]
        assert "仍在使用之前的版本" in broken
        assert "knowledge/entries/zhike/zhike-what.md:" in broken
        fake.message("直客是什么", chat_id=ADMIN, user_id=ADMIN)
        assert "平台销售" in fake.wait_sent(3, ADMIN)[2].params["text"]  # still serving
    finally:
        running.close()


def test_a_long_answer_is_split_on_paragraphs(fake: FakeTelegram, own_service: KnowledgeService,
                                              knowledge_copy: Path, tmp_path: Path) -> None:
    paragraphs = [f"第{i}段：" + "规则说明" * 150 for i in range(1, 9)]  # 8 × ~600 chars
    entry = knowledge_copy / "entries/zhike/zhike-what.md"
    head, _, body = entry.read_text("utf-8").rpartition("---\n")
    english = body[body.index("## English"):]  # every entry keeps its English answer
    entry.write_text(head + "---\n" + "\n\n".join(paragraphs) + "\n\n" + english, "utf-8")
    own_service.reload()
    running = RunningBot(_dialogue(own_service, tmp_path), _config(fake)).start()
    try:
        fake.message("直客是什么", chat_id=SELLER, user_id=SELLER)
        parts = fake.wait(lambda: len(fake.sent()) >= 2 and fake.sent())
        fake.quiet(0.5)
        parts = [c.params["text"] for c in fake.sent()]
        assert len(parts) == 2 and all(len(p) <= 4096 for p in parts)
        assert all(html_problem(p) == "" for p in parts)
        joined = "\n\n".join(parts)
        assert all(p in joined for p in paragraphs)  # nothing lost, no paragraph cut
        assert _buttons(fake.sent()[-1]) and not _buttons(fake.sent()[0])
    finally:
        running.close()


def test_questions_beyond_the_per_user_limit_get_a_polite_notice(
        fake: FakeTelegram, service: KnowledgeService, tmp_path: Path) -> None:
    dialogue = _dialogue(service, tmp_path, user_rate_limit=2)
    running = RunningBot(dialogue, _config(fake)).start()
    try:
        for _ in range(3):
            fake.message("直客是什么", chat_id=SELLER, user_id=SELLER)
        sent = fake.wait_sent(3)
        assert [c.params["text"] for c in sent].count(say("zh", "rate_limited")) == 1
    finally:
        running.close()


def test_webhook_refuses_a_missing_or_wrong_secret(fake: FakeTelegram, service: KnowledgeService,
                                                   tmp_path: Path) -> None:
    port = free_port()
    config = _config(fake, webhook_url="https://bot.example.com/tg-hook",
                     webhook_secret="s3cret-token", listen="127.0.0.1", port=port)
    running = RunningBot(_dialogue(service, tmp_path), config).start()
    try:
        [hook] = fake.wait(lambda: fake.calls_to("setWebhook"))
        fake.wait(lambda: accepts(port))  # the webhook server may bind a moment later
        assert hook.params["secret_token"] == "s3cret-token"
        update = {"update_id": 1, "message": {
            "message_id": 1, "date": 1, "text": "直客是什么",
            "chat": {"id": SELLER, "type": "private"},
            "from": {"id": SELLER, "is_bot": False, "first_name": "s"}}}

        def post(secret: str | None) -> int:
            headers = {"Content-Type": "application/json"}
            if secret is not None:
                headers["X-Telegram-Bot-Api-Secret-Token"] = secret
            request = urllib.request.Request(f"http://127.0.0.1:{port}/tg-hook",
                                             json.dumps(update).encode(), headers)
            try:
                return urllib.request.urlopen(request, timeout=10).status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert post(None) == 403
        assert post("wrong") == 403
        fake.quiet(0.5)
        assert fake.sent() == []
        assert post("s3cret-token") == 200
        assert "直客" in fake.wait_sent(1)[0].params["text"]
    finally:
        running.close()


def test_config_needs_a_secret_for_webhooks_and_hides_the_token() -> None:
    assert tg.TelegramConfig.from_environment(Environment.load({})) is None
    with pytest.raises(ValueError, match="TELEGRAM_WEBHOOK_SECRET"):
        Environment.load({"TELEGRAM_BOT_TOKEN": "1:xxxxxx", "TELEGRAM_WEBHOOK_URL": "https://h/x"})
    with pytest.raises(ValueError, match="TELEGRAM_BOT_TOKEN: not a bot token"):
        Environment.load({"TELEGRAM_BOT_TOKEN": "my bot token"})
    config = tg.TelegramConfig.from_environment(Environment.load(
        {"TELEGRAM_BOT_TOKEN": "123:SECRET", "TELEGRAM_API_BASE_URL": "http://127.0.0.1:9/bot"}))
    assert config is not None
    assert "SECRET" not in repr(config) and config.file_url == "http://127.0.0.1:9/file/bot"


def test_serve_command_runs_telegram_and_never_logs_the_token(
        fake: FakeTelegram, shared_data: Path) -> None:
    process = start_serve(shared_data, TELEGRAM_BOT_TOKEN="123:SECRETTOKEN",
                          TELEGRAM_API_BASE_URL=f"{fake.url}/bot", BOT_LOG_LEVEL="DEBUG")
    try:
        fake.wait(lambda: fake.calls_to("getUpdates"), timeout=60)
        fake.message("直客是什么", chat_id=SELLER, user_id=SELLER)
        assert "直客" in fake.wait_sent(1)[0].params["text"]
    finally:
        code, output = stop_serve(process)
    assert code == 0, output[-2000:]
    assert "SECRETTOKEN" not in output
    assert "telegram: connected as @faq_bot (long polling)" in output


def test_intermittent_server_failures_lose_no_update_and_answer_each_once(
        fake: FakeTelegram, bot: RunningBot) -> None:
    fake.wait(lambda: fake.calls_to("getUpdates"))
    fake.failures["getUpdates"] = [500, "drop", 502, "slow", 500]
    fake.failures["sendMessage"] = [500, "drop", 503, 502, "drop", 500]
    chats = list(range(200, 230))
    for chat in chats:
        fake.message("直客是什么", chat_id=chat, user_id=chat)
    fake.wait(lambda: len({c.params["chat_id"] for c in fake.sent()}) == len(chats), timeout=90)
    fake.quiet(1.0)
    delivered = [c.params["chat_id"] for c in fake.sent()]
    assert sorted(delivered) == chats  # every update answered, none twice
    failed = [c for c in fake.calls_to("sendMessage") if c.status != 200]
    assert len(failed) == 6  # the injected failures happened and were retried


# ---------------------------------------------------------------------- abuse (issue 13)


def test_one_vote_per_user_and_only_on_answers_shown_to_that_user(fake: FakeTelegram,
                                                                 bot: RunningBot) -> None:
    fake.message("薯条能带货吗", chat_id=SELLER, user_id=SELLER)
    [sent] = fake.wait_sent(1)
    for _ in range(20):  # pressing 👍 twenty times
        fake.press(_as_message(sent), "f:shutiao-no-buyers:1", SELLER)
    fake.wait(lambda: len(fake.calls_to("answerCallbackQuery")) >= 20)
    assert bot.dialogue.store.feedback_counts(0) == (1, 0)
    fake.press(_as_message(sent), "f:shutiao-no-buyers:0", SELLER)  # changing one's mind
    fake.wait(lambda: len(fake.calls_to("answerCallbackQuery")) >= 21)
    assert bot.dialogue.store.feedback_counts(0) == (0, 1)
    # Someone who never got this answer, or a vote on an entry never answered to anyone.
    fake.press(_as_message(sent), "f:shutiao-no-buyers:1", OTHER)
    fake.press(_as_message(sent), "f:zhike-what:1", SELLER)
    answers = fake.wait(lambda: (calls := fake.calls_to("answerCallbackQuery"))
                        and len(calls) >= 23 and calls)
    assert [c.params["text"] for c in answers[-2:]] == [say("zh", "question_expired")] * 2
    assert bot.dialogue.store.feedback_counts(0) == (0, 1)


def test_a_token_the_server_rejects_ends_the_bot_in_one_line_without_the_token(
        fake: FakeTelegram, shared_data: Path) -> None:
    fake.failures["getMe"] = [401]  # Telegram's answer to a revoked token
    process = start_serve(shared_data, TELEGRAM_BOT_TOKEN="123:REVOKEDTOKEN",
                          TELEGRAM_API_BASE_URL=f"{fake.url}/bot", HTTP_PORT=str(free_port()),
                          BOT_LOG_LEVEL="INFO")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "REVOKEDTOKEN" not in out + err  # python-telegram-bot's own text names it
    assert "Traceback" not in err
    assert "cannot start: TELEGRAM_BOT_TOKEN: Telegram rejected this token" in err


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmRSS")))


def test_the_webhook_checks_the_secret_before_the_body_and_caps_it(
        fake: FakeTelegram, shared_data: Path) -> None:
    port = free_port()
    process = start_serve(shared_data, TELEGRAM_BOT_TOKEN="123:SECRETTOKEN",
                          TELEGRAM_API_BASE_URL=f"{fake.url}/bot",
                          TELEGRAM_WEBHOOK_URL="https://bot.example.com/tg-hook",
                          TELEGRAM_WEBHOOK_SECRET="s3cret-token", TELEGRAM_WEBHOOK_PORT=str(port),
                          HTTP_PORT=str(free_port()))
    try:
        fake.wait(lambda: fake.calls_to("setWebhook"), timeout=90)
        fake.wait(lambda: accepts(port))
        rss = _rss_kb(process.pid)
        with ThreadPoolExecutor(4) as pool:  # four 90 MB posts at once, each a wrong secret
            results = list(pool.map(lambda _: huge_post(port, "wrong", 90 * 2**20), range(4)))
        for status, seconds, _ in results:
            assert status == b"HTTP/1.1 403 Forbidden" and seconds < 3, (status, seconds)
        grown = (_rss_kb(process.pid) - rss) / 1024
        assert grown < 30, f"RSS grew {grown:.0f} MB"  # it grew 100-180 MB per such post
        status, _, _ = huge_post(port, "s3cret-token", 2 * 2**20)  # right secret, too large
        assert status == b"HTTP/1.1 413 Request Entity Too Large"
        update = {"update_id": 1, "message": {
            "message_id": 1, "date": 1, "text": "直客是什么",
            "chat": {"id": SELLER, "type": "private"},
            "from": {"id": SELLER, "is_bot": False, "first_name": "s"}}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/tg-hook",
                                         json.dumps(update).encode(),
                                         {"Content-Type": "application/json",
                                          "X-Telegram-Bot-Api-Secret-Token": "s3cret-token"})
        assert urllib.request.urlopen(request, timeout=10).status == 200
        assert "直客" in fake.wait_sent(1)[0].params["text"]
    finally:
        code, output = stop_serve(process)
    assert code == 0, output[-2000:]
    assert "SECRETTOKEN" not in output and "s3cret-token" not in output
