"""Defects of the old shape (issue 12), each pinned: configuration read once from the
environment and .env, one-line start-up failures, loopback defaults, the image's eval."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bot.settings import Environment
from testing.serve import ROOT, free_port, start_serve, stop_serve


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_", "BOT_", "REDIS_", "LOG_"))}
    return {**env, **extra}


def test_a_log_level_set_only_in_dotenv_is_honoured(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / ".env").write_text("BOT_LOG_LEVEL=info\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "直客是什么"],
                            env=_clean_env(BOT_DATA_DIR=str(shared_data),
                                           BOT_KNOWLEDGE_DIR=str(ROOT / "knowledge")),
                            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert " INFO " in result.stderr  # the .env level reached the logging set-up


def test_servers_listen_on_loopback_unless_told_otherwise() -> None:
    env = Environment.load({})
    assert env.HTTP_HOST == "127.0.0.1" and env.TELEGRAM_WEBHOOK_LISTEN == "127.0.0.1"


def test_an_unreachable_telegram_api_is_retried_with_one_line_each_time(
        shared_data: Path) -> None:
    closed = free_port()  # nothing listens here
    process = start_serve(shared_data, TELEGRAM_BOT_TOKEN="123:SECRETTOKEN",
                          TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{closed}/bot",
                          HTTP_PORT=str(free_port()))
    time.sleep(6)
    assert process.poll() is None, "the bot gave up instead of retrying"
    code, output = stop_serve(process)
    assert code == 0, output[-2000:]
    assert "telegram API unreachable" in output and "retrying in" in output
    assert "Traceback" not in output and "SECRETTOKEN" not in output


def test_eval_without_its_development_set_says_so_in_one_line(run_cli) -> None:
    result = run_cli("eval", "--cases", "/nonexistent/dev.yaml")
    assert result.returncode == 2
    assert "the development set is not here" in result.stderr
    assert "Traceback" not in result.stderr
