"""Faults: unusable data directories, failing stores, builds killed half-way, hostile input."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.dialogue.engine import ConversationKey, Engine
from bot.kb.service import KnowledgeService
from bot.settings import Settings
from bot.store.resilient import ResilientStore
from bot.store.sqlite import SQLiteStore
from index.persist import current_build
from tests.conftest import ROOT


def test_a_read_only_store_degrades_to_memory_and_answering_goes_on(
        service: KnowledgeService, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sqlite = SQLiteStore(tmp_path / "bot.sqlite")
    store = ResilientStore(sqlite)
    engine = Engine(service, store, Settings(data_dir=tmp_path))
    key = ConversationKey("test", "c", "u")
    assert engine.reply(key, "直客是什么").entry_id == "zhike-what"
    sqlite._db.execute("PRAGMA query_only = ON")  # the disk turns read-only under the bot
    with caplog.at_level(logging.ERROR):
        assert engine.reply(key, "个体店怎么开").kind == "clarify"
    assert store.degraded
    assert any("continuing in memory" in r.getMessage() for r in caplog.records)
    # The conversation goes on from memory: the pick finds its pending question.
    assert engine.reply(key, "2").entry_id == "getidian-enterprise"
    assert store.reply_counts(0) == {"clarify": 1, "answer": 1}


def test_a_full_disk_is_reported_and_the_conversation_goes_on_in_memory(
        service: KnowledgeService, shared_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "index").mkdir(parents=True)
    shutil.copy(shared_data / "index" / "embeddings.sqlite", data / "index" / "embeddings.sqlite")
    env = {**os.environ, "BOT_DATA_DIR": str(data), "BOT_LOG_LEVEL": "ERROR"}
    # While there is room: the index is built and the store created.
    first = subprocess.run([sys.executable, "-m", "bot", "ask", "直客是什么"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    # Then no file may grow any more (RLIMIT_FSIZE 0), as on a full disk. Pipes are not files,
    # so the replies still get out.
    no_room = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)); "
               "os.execv(sys.executable, [sys.executable, '-m', 'bot', 'chat', '--json'])")
    result = subprocess.run([sys.executable, "-c", no_room], input="个体店怎么开\n2\n", env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["kind"] for r in replies] == ["clarify", "answer"]
    assert replies[1]["entry_id"] == "getidian-enterprise"  # the pick found its question
    assert "continuing in memory" in result.stderr


def test_an_unusable_data_directory_is_reported_and_the_bot_still_answers(
        tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the data directory should be", "utf-8")
    env = {**os.environ, "BOT_DATA_DIR": str(blocked), "BOT_LOG_LEVEL": "ERROR"}
    result = subprocess.run([sys.executable, "-m", "bot", "chat"], input="直客是什么\n",
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "直客" in result.stdout
    assert "serving it from memory" in result.stderr
    assert "continuing in memory" in result.stderr


def test_a_build_killed_half_way_leaves_the_last_good_build_serving(
        knowledge_copy: Path, shared_data: Path, service: KnowledgeService,
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "BOT_DATA_DIR": str(data), "BOT_KNOWLEDGE_DIR": str(knowledge_copy)}
    first = subprocess.run([sys.executable, "-m", "bot", "index", "build"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    good = current_build(data / "index")
    # Rebuild from scratch (no embedding cache) and kill it while it embeds or writes.
    (data / "index" / "embeddings.sqlite").unlink()
    build = subprocess.Popen([sys.executable, "-m", "bot", "index", "build", "--force"],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    time.sleep(2.0)
    build.send_signal(signal.SIGKILL)
    build.wait(30)
    assert current_build(data / "index") == good  # the pointer never moved
    restarted = KnowledgeService(knowledge_copy, data, service.encoder)
    assert restarted.start() == []
    assert restarted.current.index.search("直客是什么")[0].key == "zhike-what"
    leftovers = [p.name for p in (data / "index" / "builds").iterdir()
                 if p.name.startswith(".partial")]
    assert leftovers == []  # the next build swept what the killed one left
