"""Channel load benchmarks: Telegram and WeCom end to end on loopback, and a reload under load.

    python -m benchmarks.channels [--chats 200] [--messages 10] [--requests 2000]

- Telegram: the real Application polls the fake Bot API; chats × messages questions are queued
  at once (questions repeat, as in real groups: the query cache's hit rate is reported).
  Throughput, latency from the update being queued to its sendMessage, and a check
  that every update got exactly one reply. Run with Telegram's 30 msg/s overall limit off
  (TELEGRAM_OVERALL_RATE=0) to measure the bot, since the limiter would only measure itself.
- Reload under load: the same Telegram load while an admin /reload runs; no reply may be lost
  or doubled, and the swap's duration is reported.
- WeCom: encrypted robot callbacks posted by a bounded-concurrency load generator to the real
  aiohttp server; requests per second, latency, and every msgid answered exactly once.
Figures are printed and written to benchmarks/results-channels.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import numpy as np

from bot.channels import telegram as tg
from bot.channels.core import Dialogue
from bot.channels.wecom import WeComConfig, WeComServer
from bot.channels.wecom_crypto import WeComCrypto
from bot.cli import make_service
from bot.config import Settings
from bot.engine import Engine
from bot.evaluation import load_cases
from bot.storage import SQLiteStore
from tests.fake_telegram import FakeTelegram, RunningBot

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [c.turns[0] for c in load_cases(ROOT / "tests" / "eval" / "dev.yaml")]
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def _percentiles(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1)}


def _dialogue(service, data: Path, admins: frozenset[str] = frozenset()) -> Dialogue:
    settings = replace(Settings(data_dir=data), user_rate_limit=0, telegram_admins=admins,
                       wecom_admins=admins)
    store = SQLiteStore(data / "bot.sqlite")
    return Dialogue(Engine(service, store, settings), service, store, settings, admins)


def telegram_load(service, chats: int, messages: int, reload_midway: bool = False) -> dict:
    """Queue chats × messages questions; measure until every one is answered."""
    fake = FakeTelegram()
    url = fake.start()
    data = Path(tempfile.mkdtemp(prefix="bench-tg-"))
    config = tg.TelegramConfig(token="123:BENCH", base_url=f"{url}/bot", overall_rate=0)
    bot = RunningBot(_dialogue(service, data, frozenset({"1"})), config).start()
    queued: dict[int, list[float]] = {}
    try:
        started = time.perf_counter()
        for round_ in range(messages):
            for chat in range(1000, 1000 + chats):
                # A new question each round, chosen so every chat asks something different.
                question = QUESTIONS[(chat * 7 + round_ * 13) % len(QUESTIONS)]
                fake.message(question, chat_id=chat, user_id=chat)
                queued.setdefault(chat, []).append(time.perf_counter())
        reload_seconds = None
        if reload_midway:
            fake.wait(lambda: len(fake.sent()) >= chats * messages // 3, timeout=600)
            before = time.perf_counter()
            fake.message("/reload", chat_id=1, user_id=1)
            fake.wait(lambda: fake.sent(1), timeout=120)
            reload_seconds = round(time.perf_counter() - before, 2)
        total = chats * messages + (1 if reload_midway else 0)
        fake.wait(lambda: len(fake.sent()) >= total, timeout=900)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # anything doubled would arrive now
        arrivals: dict[int, list[float]] = {}
        for call in fake.sent():
            arrivals.setdefault(call.params["chat_id"], []).append(call.at)
    finally:
        bot.close()
        fake.stop()
    latencies = []
    for chat, times in queued.items():
        replies = sorted(arrivals.get(chat, []))
        latencies += [r - q for q, r in zip(times, replies, strict=False)]
    counts = [len(arrivals.get(chat, [])) for chat in queued]
    return {
        "updates": chats * messages,
        "replies_per_s": round(chats * messages / elapsed, 1),
        **_percentiles(latencies),
        "unanswered": sum(max(0, messages - n) for n in counts),
        "answered_twice": sum(max(0, n - messages) for n in counts),
        **({"reload_seconds": reload_seconds} if reload_midway else {}),
    }


async def _wecom(service, requests: int, concurrency: int, unique: bool = False) -> dict:
    data = Path(tempfile.mkdtemp(prefix="bench-wc-"))
    config = WeComConfig(bot_token="bench", bot_aes_key=KEY, reply_budget=4.0)
    server = WeComServer(_dialogue(service, data), config)
    from aiohttp import web

    runner = web.AppRunner(server.application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    crypto = WeComCrypto("bench", KEY, "")
    cache = service.current.index.query_cache
    hits_before, misses_before = cache.hits, cache.misses
    answered: dict[str, int] = {}
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, i: int, msgid: str) -> None:
        event = {"msgid": msgid, "aibotid": "B", "chattype": "single",
                 "from": {"userid": f"u{i % 500}"}, "response_url": "", "msgtype": "text",
                 "text": {"content": QUESTIONS[i % len(QUESTIONS)] + (f" {i}" if unique else "")}}
        encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False))
        ts = str(int(time.time()))
        params = {"msg_signature": crypto.signature(ts, "n", encrypt), "timestamp": ts,
                  "nonce": "n"}
        async with semaphore:
            before = time.perf_counter()
            async with session.post(f"http://{host}:{port}/wecom/bot", params=params,
                                    json={"encrypt": encrypt}) as response:
                body = await response.text()
            latencies.append(time.perf_counter() - before)
        if body:
            reply = json.loads(crypto.decrypt(json.loads(body)["encrypt"]))
            if reply["stream"]["finish"]:
                answered[msgid] = answered.get(msgid, 0) + 1

    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            await asyncio.gather(*(one(session, i, f"b{i}") for i in range(requests)))
            elapsed = time.perf_counter() - started
            # Every tenth message is retried: a retry must never be answered again.
            await asyncio.gather(*(one(session, i, f"b{i}") for i in range(0, requests, 10)))
    finally:
        await runner.cleanup()
    hits, misses = cache.hits - hits_before, cache.misses - misses_before
    return {
        "requests": requests,
        "distinct_texts": requests if unique else min(requests, len(QUESTIONS)),
        "query_cache_hit_rate": round(hits / max(hits + misses, 1), 2),
        "concurrency": concurrency,
        "requests_per_s": round(requests / elapsed, 1),
        **_percentiles(latencies[:requests]),
        "unanswered": requests - len(answered),
        "answered_twice": sum(1 for n in answered.values() if n > 1),
    }


def main() -> None:
    """Run the channel benchmarks and print their figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    service = make_service(Settings.from_env())
    service.start()
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "entries": len(service.current.kb.entries),
        "telegram": telegram_load(service, args.chats, args.messages),
        "telegram_reload_under_load": telegram_load(service, args.chats // 2, args.messages,
                                                    reload_midway=True),
        "wecom": asyncio.run(_wecom(service, args.requests, args.concurrency)),
        # Every text new: what the encoder alone sustains, without the query cache's help.
        "wecom_distinct_texts": asyncio.run(_wecom(service, args.requests // 2,
                                                   args.concurrency, unique=True)),
    }
    print(json.dumps(results, ensure_ascii=False, indent=2))
    out = ROOT / "benchmarks" / "results-channels.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2), "utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
