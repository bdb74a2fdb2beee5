"""Channel load benchmarks: the bot served as in production, driven over loopback.

    python -m benchmarks.channels [--chats 200] [--messages 10] [--requests 2000]

`python -m bot serve` runs in a child process configured by environment variables alone, as in
production. This process plays the platforms: the fake Bot API for Telegram, and a load
generator posting encrypted callbacks for WeCom. Both share the machine's 2 cores with the bot.

- Telegram burst: chats × messages updates queued at once; the throughput the bot sustains.
- Telegram paced: every chat asks, waits for the answer, reads it for 1-4 s and asks again, as
  sellers in a group do; latency from the update being queued to its sendMessage.
- Reload under load: the paced run while an admin edits one entry and sends /reload.
- WeCom: robot callbacks, 32 in flight, every tenth delivered twice (a platform retry); once with
  questions that repeat, as in seller groups, and once with every text new, where nothing but the
  encoder's speed helps.
Every run checks that each message got exactly one answer. Telegram's overall limit of 30
messages/s (TELEGRAM_OVERALL_RATE) is off, so that the bot is measured rather than the limiter.
Figures are printed and written to benchmarks/results-channels.json.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import numpy as np

from bot.channels.wecom.crypto import WeComCrypto
from bot.evaluation import load_cases
from testing.fake_telegram import Call, FakeTelegram
from testing.serve import free_port

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [c.turns[0] for c in load_cases(ROOT / "tests" / "eval" / "dev.yaml")]
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ADMIN = 1
EDITED = Path("entries") / "governance" / "banned-ad-words.md"


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    a = np.array(values) * 1000
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)}


def _question(chat: int, turn: int) -> str:
    # A different question each turn, and neighbouring chats ask different things.
    return QUESTIONS[(chat * 7 + turn * 13) % len(QUESTIONS)]


class ServedBot:
    """`python -m bot serve` in a child process, with its own copy of the knowledge and data."""

    def __init__(self, template: Path, **env: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        shutil.copytree(template / "knowledge", self.home / "knowledge")
        shutil.copytree(template / "data" / "index", self.home / "data" / "index")
        self.port = free_port()
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_", "BOT_", "REDIS_"))}
        self.log = (self.home / "serve.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"], cwd=ROOT, stdout=self.log, stderr=self.log,
            env={**clean, "BOT_DATA_DIR": str(self.home / "data"),
                 "BOT_KNOWLEDGE_DIR": str(self.home / "knowledge"), "BOT_USER_RATE_LIMIT": "0",
                 "BOT_ADMIN_TELEGRAM_IDS": str(ADMIN), "HTTP_HOST": "127.0.0.1",
                 "HTTP_PORT": str(self.port), **env})
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {(self.home / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("serve did not become healthy")

    def edit_knowledge(self) -> None:
        """Add one question to one entry, as an author would before a /reload."""
        path = self.home / "knowledge" / EDITED
        text = path.read_text("utf-8")
        added = "questions:\n  - 宣传文案里哪些说法会违规\n"
        path.write_text(text.replace("questions:\n", added, 1), "utf-8")

    def usage(self) -> dict[str, float]:
        """Peak RSS and CPU seconds of the serving process so far."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        peak_kb = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return {"serve_peak_rss_mb": round(peak_kb / 1024), "serve_cpu_s": round(cpu, 1)}

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


def prepare(template: Path) -> None:
    """Copy the knowledge and build its index once; every served bot starts from a copy."""
    shutil.copytree(ROOT / "knowledge", template / "knowledge")
    subprocess.run([sys.executable, "-m", "bot", "index", "build"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL,
                   env={**os.environ, "BOT_DATA_DIR": str(template / "data"),
                        "BOT_KNOWLEDGE_DIR": str(template / "knowledge")})


class _Chats:
    """Per-chat bookkeeping: when each question was queued and when each answer arrived."""

    def __init__(self, chats: range) -> None:
        self.queued: dict[int, list[float]] = {c: [] for c in chats}
        self.answered: dict[int, list[float]] = {c: [] for c in chats}

    def report(self, messages: int, elapsed: float) -> dict:
        latencies = [a - q for c in self.queued
                     for q, a in zip(self.queued[c], self.answered[c], strict=False)]
        counts = [len(self.answered[c]) for c in self.queued]
        return {
            "updates": sum(len(q) for q in self.queued.values()),
            "replies_per_s": round(sum(min(n, messages) for n in counts) / elapsed, 1),
            **_percentiles(latencies),
            "unanswered": sum(max(0, messages - n) for n in counts),
            "answered_twice": sum(max(0, n - messages) for n in counts),
        }


def telegram_burst(template: Path, chats: int, messages: int) -> dict:
    """Queue chats × messages questions at once; measure until every one is answered."""
    fake = FakeTelegram()
    book = _Chats(range(1000, 1000 + chats))
    fake.on_call = lambda call: _record_answer(book, call)
    bot = _serve_telegram(template, fake)
    try:
        started = time.perf_counter()
        for turn in range(messages):
            for chat in book.queued:
                book.queued[chat].append(time.perf_counter())
                fake.message(_question(chat, turn), chat_id=chat, user_id=chat)
        fake.wait(lambda: len(fake.sent()) >= chats * messages, timeout=900)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # anything doubled would arrive now
        return {**book.report(messages, elapsed), **bot.usage()}
    finally:
        bot.close()
        fake.stop()


def telegram_paced(template: Path, chats: int, messages: int, think: tuple[float, float],
                   reload_midway: bool = False) -> dict:
    """Each chat asks, waits for its answer, thinks, and asks again, `messages` times."""
    fake = FakeTelegram()
    book = _Chats(range(1000, 1000 + chats))
    rng = random.Random(7)
    due = [(rng.uniform(0, think[1]), chat) for chat in book.queued]  # staggered first questions
    heapq.heapify(due)
    cond = threading.Condition()

    def on_call(call: Call) -> None:
        chat = _record_answer(book, call)
        if chat is not None:
            with cond:
                if len(book.queued[chat]) < messages:
                    heapq.heappush(due, (call.at - started + rng.uniform(*think), chat))
                cond.notify()

    fake.on_call = on_call
    bot = _serve_telegram(template, fake)
    reload = {}
    try:
        started = time.perf_counter()
        reload_at = (messages * chats) // 3 if reload_midway else None
        asked = 0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            with cond:
                now = time.perf_counter() - started
                if not due:
                    if all(len(a) >= messages for a in book.answered.values()):
                        break
                    cond.wait(0.5)
                    continue
                if due[0][0] > now:
                    cond.wait(due[0][0] - now)
                    continue
                _, chat = heapq.heappop(due)
                turn = len(book.queued[chat])
                book.queued[chat].append(time.perf_counter())
            fake.message(_question(chat, turn), chat_id=chat, user_id=chat)
            asked += 1
            if asked == reload_at:
                reload = _reload_in_background(fake, bot)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        if reload:
            reload["thread"].join(120)
            reload = {k: v for k, v in reload.items() if k != "thread"}
        return {"think_s": list(think), **book.report(messages, elapsed), **reload, **bot.usage()}
    finally:
        bot.close()
        fake.stop()


def _reload_in_background(fake: FakeTelegram, bot: ServedBot) -> dict:
    """Edit one entry and send /reload as the admin; fill in what the reply reports."""
    result: dict = {}

    def run() -> None:
        bot.edit_knowledge()
        before = time.perf_counter()
        fake.message("/reload", chat_id=ADMIN, user_id=ADMIN)
        reply = fake.wait(lambda: fake.sent(ADMIN), timeout=120)[0].params["text"]
        result["reload_reply_s"] = round(time.perf_counter() - before, 2)
        seconds = re.search(r"用时 ([\d.]+) 秒", reply)
        result["reload_build_s"] = float(seconds.group(1)) if seconds else None
        result["reload_changed"] = "banned-ad-words" in reply

    thread = threading.Thread(target=run, daemon=True)
    result["thread"] = thread
    thread.start()
    return result


def _record_answer(book: _Chats, call: Call) -> int | None:
    if call.method != "sendMessage" or call.status != 200:
        return None
    chat = call.params["chat_id"]
    if chat not in book.answered:
        return None
    book.answered[chat].append(call.at)
    return chat


def _serve_telegram(template: Path, fake: FakeTelegram) -> ServedBot:
    bot = ServedBot(template, TELEGRAM_BOT_TOKEN="123:BENCH",
                    TELEGRAM_API_BASE_URL=f"{fake.start()}/bot", TELEGRAM_OVERALL_RATE="0")
    fake.wait(lambda: fake.calls_to("getUpdates"), timeout=60)  # polling: the clock may start
    return bot



async def _wecom(template: Path, requests: int, concurrency: int, unique: bool,
                 time_limit: float = 300.0) -> dict:
    """Post up to `requests` callbacks, none begun after time_limit seconds; count the answers."""
    bot = ServedBot(template, WECOM_BOT_TOKEN="bench", WECOM_BOT_AES_KEY=KEY,
                    WECOM_REPLY_BUDGET="4")
    crypto = WeComCrypto("bench", KEY, "")
    url = f"http://127.0.0.1:{bot.port}/wecom/bot"
    answered: dict[str, set[str]] = {}
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + time_limit
    sent: set[int] = set()

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        text = QUESTIONS[i % len(QUESTIONS)] + (f" {i}" if unique else "")
        event = {"msgid": f"b{i}", "aibotid": "B", "chattype": "single",
                 "from": {"userid": f"u{i % 500}"}, "response_url": "", "msgtype": "text",
                 "text": {"content": text}}
        encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False))
        ts = str(int(time.time()))
        params = {"msg_signature": crypto.signature(ts, "n", encrypt), "timestamp": ts,
                  "nonce": "n"}
        async with semaphore:
            if time.monotonic() > deadline:
                return
            sent.add(i)
            before = time.perf_counter()
            async with session.post(url, params=params, json={"encrypt": encrypt}) as response:
                body = await response.text()
            latencies.append(time.perf_counter() - before)
        if body:
            reply = json.loads(crypto.decrypt(json.loads(body)["encrypt"]))
            if reply["stream"]["finish"]:
                # A retry gets its stream again (same id): WeCom shows it once. A second
                # stream for one msgid would be an answer given twice.
                answered.setdefault(f"b{i}", set()).add(reply["stream"]["id"])

    try:
        async with aiohttp.ClientSession() as session:
            started = time.perf_counter()
            await asyncio.gather(*(one(session, i) for i in range(requests)))
            elapsed = time.perf_counter() - started
            posted = len(sent)
            # Every tenth message is delivered again: a retry must never be answered again.
            deadline = time.monotonic() + time_limit
            await asyncio.gather(*(one(session, i) for i in sorted(sent) if i % 10 == 0))
        usage = bot.usage()
    finally:
        bot.close()
    return {
        "requests": posted,
        "distinct_texts": posted if unique else min(posted, len(QUESTIONS)),
        "concurrency": concurrency,
        "requests_per_s": round(posted / elapsed, 1),
        **(_percentiles(latencies[:posted]) if posted else {}),
        "unanswered": posted - len(answered),
        "answered_twice": sum(1 for ids in answered.values() if len(ids) > 1),
        **usage,
    }


def main() -> None:
    """Run the channel benchmarks and print their figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="seconds after which the WeCom generator begins no new request")
    parser.add_argument("--think", type=float, nargs=2, default=(1.0, 4.0),
                        help="seconds a paced chat reads an answer before asking again")
    parser.add_argument("--only", choices=["telegram", "wecom"], default=None)
    args = parser.parse_args()
    template = Path(tempfile.mkdtemp(prefix="bench-template-"))
    prepare(template)
    think = tuple(args.think)
    runs = {
        "telegram_burst": lambda: telegram_burst(template, args.chats, args.messages),
        "telegram_paced": lambda: telegram_paced(template, args.chats, args.messages, think),
        "telegram_paced_reload": lambda: telegram_paced(template, args.chats, args.messages,
                                                        think, reload_midway=True),
        "wecom": lambda: asyncio.run(_wecom(template, args.requests, args.concurrency, False,
                                            args.time_limit)),
        "wecom_distinct_texts": lambda: asyncio.run(
            _wecom(template, args.requests, args.concurrency, True, args.time_limit)),
    }
    run_selected(runs, args.only, template, ROOT / "benchmarks" / "results-channels.json")


def run_selected(runs: dict[str, Callable[[], dict]], only: str | None, template: Path,
                 out: Path) -> None:
    """Run the benchmarks --only selects, print each result, write them all to out (with
    --only, the other runs' figures from an earlier run there are kept)."""
    results: dict = json.loads(out.read_text("utf-8")) if only and out.exists() else {}
    results.update({"machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                               f"Python {platform.python_version()}",
                    "date": time.strftime("%Y-%m-%d")})
    try:
        for name, run in runs.items():
            if only and not name.startswith(only):
                continue
            results[name] = run()
            print(name, json.dumps(results[name], ensure_ascii=False), flush=True)
    finally:
        shutil.rmtree(template, ignore_errors=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2), "utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
