"""WeCom end to end on loopback: a harness plays WeCom against the real aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree

from bot.channels.frontdesk import FrontDesk, Inbound
from bot.channels.wecom.crypto import WeComCrypto
from bot.channels.wecom.server import WeComConfig, WeComServer
from bot.copy import say
from bot.dialogue.engine import Engine
from bot.dialogue.replies import Reply
from bot.kb.service import KnowledgeService
from bot.settings import Settings
from bot.store.ratelimit import RateLimiter
from bot.store.sqlite import SQLiteStore
from testing.serve import free_port, start_serve, stop_serve

CORP = "ww-test-corp"
BOT_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
APP_KEY = base64.b64encode(bytes(range(32, 64))).decode().rstrip("=")
ADMIN = "boss"


class FakeWeComAPI:
    """gettoken, message/send and response_url, recording what arrives."""

    def __init__(self) -> None:
        self.tokens_issued = 0
        self.sent: list[dict] = []
        self.responses: list[dict] = []
        self.expire_next_send = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self.gettoken)
        app.router.add_post("/cgi-bin/message/send", self.route_send)
        app.router.add_post("/respond/{id}", self.respond)
        return app

    async def route_send(self, request: web.Request) -> web.Response:
        return await self.send(request)  # through the attribute, so a test can swap it

    async def gettoken(self, request: web.Request) -> web.Response:
        assert request.query["corpid"] == CORP and request.query["corpsecret"] == "app-secret"
        self.tokens_issued += 1
        return web.json_response({"errcode": 0, "access_token": f"tok{self.tokens_issued}",
                                  "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        token = request.query["access_token"]
        if self.expire_next_send:
            self.expire_next_send = False
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if token != f"tok{self.tokens_issued}":
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        self.sent.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def respond(self, request: web.Request) -> web.Response:
        self.responses.append({"id": request.match_info["id"], **await request.json()})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


class Harness:
    """Runs the bot's server and the fake API on free loopback ports; plays WeCom."""

    def __init__(self, server: WeComServer, api: FakeWeComAPI) -> None:
        self.server = server
        self.api = api
        self.robot = WeComCrypto("bot-token", BOT_KEY, "")
        self.app = WeComCrypto("app-token", APP_KEY, CORP)

    async def __aenter__(self) -> Harness:
        self._runners = []
        for application in (self.api.app(), self.server.application()):
            runner = web.AppRunner(application)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
        self.api_url = _url(self._runners[0])
        self.url = _url(self._runners[1])
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        for runner in reversed(self._runners):
            await runner.cleanup()

    def signed(self, crypto: WeComCrypto, encrypt: str, nonce: str = "nonce1",
               timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {"msg_signature": crypto.signature(ts, nonce, encrypt), "timestamp": ts,
                "nonce": nonce}

    async def robot_post(self, event: dict, **sign: object) -> tuple[int, dict | None]:
        encrypt = self.robot.encrypt(json.dumps(event, ensure_ascii=False))
        async with self.http.post(f"{self.url}/wecom/bot", json={"encrypt": encrypt},
                                  params=self.signed(self.robot, encrypt, **sign)) as r:
            body = await r.text()
        if r.status != 200 or not body:
            return r.status, None
        data = json.loads(body)
        self.robot.verify(data["msgsignature"], str(data["timestamp"]), data["nonce"],
                          data["encrypt"])
        assert data["nonce"] == sign.get("nonce", "nonce1")
        return r.status, json.loads(self.robot.decrypt(data["encrypt"]))

    def robot_text(self, text: str, msgid: str, user: str = "seller", group: bool = False,
                   response_url: str = "") -> dict:
        event = {"msgid": msgid, "aibotid": "AIBOT", "chattype": "group" if group else "single",
                 "from": {"userid": user}, "response_url": response_url, "msgtype": "text",
                 "text": {"content": text}}
        if group:
            event["chatid"] = "group-1"
        return event

    async def app_post(self, content: str, msgid: str, user: str = "seller",
                       body: bytes | None = None, **sign: object) -> tuple[int, str]:
        inner = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName>"
                 f"<FromUserName><![CDATA[{user}]]></FromUserName>"
                 f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{content}]]></Content><MsgId>{msgid}</MsgId>"
                 f"<AgentID>1000002</AgentID></xml>")
        encrypt = self.app.encrypt(inner)
        if body is None:
            body = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA["
                    f"{encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>").encode()
        async with self.http.post(f"{self.url}/wecom/app", data=body,
                                  params=self.signed(self.app, encrypt, **sign)) as r:
            return r.status, await r.text()

    def app_reply_content(self, body: str, user: str = "seller") -> str:
        outer = ElementTree.fromstring(body)
        self.app.verify(outer.findtext("MsgSignature"), outer.findtext("TimeStamp"),
                        outer.findtext("Nonce"), outer.findtext("Encrypt"))
        inner = ElementTree.fromstring(self.app.decrypt(outer.findtext("Encrypt")))
        assert inner.findtext("ToUserName") == user
        assert inner.findtext("FromUserName") == CORP
        return inner.findtext("Content")


def _url(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def _server(service: KnowledgeService, tmp_path: Path, api_url: str = "",
            **config: object) -> WeComServer:
    settings = Settings(data_dir=tmp_path)
    store = SQLiteStore(tmp_path / "bot.sqlite")
    limiter = RateLimiter(settings.user_rate_limit, settings.user_rate_window)
    dialogue = FrontDesk(Engine(service, store, settings), service, store, limiter,
                         frozenset({ADMIN}))
    base = WeComConfig(bot_token="bot-token", bot_aes_key=BOT_KEY, corp_id=CORP,
                       app_token="app-token", app_aes_key=APP_KEY, app_secret="app-secret",
                       agent_id="1000002", api_base_url=api_url, reply_budget=5.0,
                       stream_grace=0.3)
    return WeComServer(dialogue, replace(base, **config))


def _run(service: KnowledgeService, tmp_path: Path,
         scenario: Callable[[Harness], Awaitable[None]], **config: object) -> WeComServer:
    async def main() -> WeComServer:
        api = FakeWeComAPI()
        # The API address is known only once the fake listens: start it, then the server.
        runner = web.AppRunner(api.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        server = _server(service, tmp_path, _url(runner), **config)
        try:
            async with Harness(server, api) as harness:
                harness.api_url = _url(runner)
                await scenario(harness)
        finally:
            await runner.cleanup()
        return server

    return asyncio.run(main())


async def _until(predicate: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def test_url_verification_on_both_paths(service: KnowledgeService, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        for path, crypto in (("bot", h.robot), ("app", h.app)):
            echostr = crypto.encrypt("echo-1234567890")
            params = {**h.signed(crypto, echostr), "echostr": echostr}
            async with h.http.get(f"{h.url}/wecom/{path}", params=params) as r:
                assert (r.status, await r.text()) == (200, "echo-1234567890")
            params["msg_signature"] = "0" * 40
            async with h.http.get(f"{h.url}/wecom/{path}", params=params) as r:
                assert r.status == 403
        async with h.http.get(f"{h.url}/healthz") as r:
            assert (r.status, await r.json()) == (200, {"status": "ok"})

    _run(service, tmp_path, scenario)


def test_app_message_answered_passively_and_through_the_api(service: KnowledgeService,
                                                           tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        status, body = await h.app_post("直客是什么", "1001")
        assert status == 200 and "直客" in h.app_reply_content(body)

    _run(service, tmp_path, scenario)

    async def slow(h: Harness) -> None:
        h.api.expire_next_send = True  # the cached token has lapsed on WeCom's side
        status, body = await h.app_post("薯条能带货吗", "1002")
        assert (status, body) == (200, "")
        await _until(lambda: h.api.sent)
        [sent] = h.api.sent
        assert sent["touser"] == "seller" and sent["agentid"] == 1000002
        assert "内容加热" in sent["text"]["content"]
        assert h.api.tokens_issued == 2  # refreshed once after 42001, then delivered once
        assert len(sent["text"]["content"].encode()) <= 2048

    _run(service, tmp_path / "slow", slow, reply_budget=0.0)


def test_robot_single_and_group_messages(service: KnowledgeService, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        status, reply = await h.robot_post(h.robot_text("直客是什么", "m1"))
        assert status == 200 and reply["stream"]["finish"] is True
        assert "直客" in reply["stream"]["content"]
        status, reply = await h.robot_post(
            h.robot_text("@小红书政策助手 号店一体是什么意思", "m2", group=True), nonce="n2")
        assert reply["stream"]["finish"] and "号店一体" in reply["stream"]["content"]

    _run(service, tmp_path, scenario)


def test_robot_stream_refresh_and_response_url_paths(service: KnowledgeService,
                                                     tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        _, first = await h.robot_post(h.robot_text("直客是什么", "m10"))
        assert first["stream"] == {"id": first["stream"]["id"], "finish": False,
                                   "content": say("zh", "thinking")}
        refresh = {"msgid": "m11", "msgtype": "stream", "stream": {"id": first["stream"]["id"]}}
        finished = None
        while finished is None:  # WeCom keeps asking until the stream is finished
            _, update = await h.robot_post(refresh)
            if update["stream"]["finish"]:
                finished = update
            await asyncio.sleep(0.05)
        assert "直客" in finished["stream"]["content"]

        # Nobody refreshes this one: the answer goes to response_url instead.
        _, first = await h.robot_post(h.robot_text(
            "薯条能带货吗", "m12", response_url=f"{h.api_url}/respond/abc"))
        assert first["stream"]["finish"] is False
        [delivered] = await _until(lambda: h.api.responses)
        assert delivered["id"] == "abc" and delivered["msgtype"] == "markdown"
        assert "内容加热" in delivered["markdown"]["content"]

    _run(service, tmp_path, scenario, reply_budget=0.0)


def test_clarify_then_pick_by_number_and_retries_answer_once(service: KnowledgeService,
                                                             tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        _, clarify = await h.robot_post(h.robot_text("个体店怎么开", "m20", group=True))
        assert "1. " in clarify["stream"]["content"] and "2. " in clarify["stream"]["content"]
        # Another seller in the same group does not share the pending question.
        _, other = await h.robot_post(h.robot_text("2", "m21", user="other", group=True))
        assert "企业专业号" not in other["stream"]["content"]
        streams = []
        for _ in range(3):  # WeCom retries the same msgid (its first response may be lost)
            status, picked = await h.robot_post(h.robot_text("2", "m22", group=True))
            assert status == 200 and "企业专业号" in picked["stream"]["content"]
            streams.append(picked["stream"]["id"])
        # Every retry gets the same stream again: one answer shown, none lost, none doubled.
        assert len(set(streams)) == 1

    server = _run(service, tmp_path, scenario)
    counts = server.dialogue.store.reply_counts(0)
    assert sum(counts.values()) == 3  # clarify, the other seller's fallback, one answer


def _bad_padding(crypto_key: str) -> str:
    key = base64.b64decode(crypto_key + "=")
    plain = os.urandom(16) + struct.pack(">I", 2) + b"hi" + b"\x00" * 10  # pad byte 0
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def test_forged_and_malicious_requests_are_refused(service: KnowledgeService,
                                                   tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        event = h.robot_text("直客是什么", "m30")
        encrypt = h.robot.encrypt(json.dumps(event))
        params = h.signed(h.robot, encrypt)
        padded = _bad_padding(BOT_KEY)
        cases: list[tuple[str, str, dict, bytes, int]] = [
            ("bad signature", "bot", {**params, "msg_signature": "f" * 40},
             json.dumps({"encrypt": encrypt}).encode(), 403),
            ("stale timestamp", "bot", h.signed(h.robot, encrypt, timestamp=1_000_000_000),
             json.dumps({"encrypt": encrypt}).encode(), 403),
            ("not json", "bot", params, b"<xml/>", 400),
            ("bad padding", "bot", h.signed(h.robot, padded),
             json.dumps({"encrypt": padded}).encode(), 400),
            ("oversized", "bot", params, b"{" + b" " * (70 * 1024) + b"}", 413),
        ]
        wrong = WeComCrypto("app-token", APP_KEY, "another-corp").encrypt("<xml/>")
        cases.append(("wrong receiveid", "app", h.signed(h.app, wrong),
                      f"<xml><Encrypt>{wrong}</Encrypt></xml>".encode(), 403))
        doctype = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
                   b"<xml><Encrypt>&lol;</Encrypt></xml>")
        cases.append(("doctype", "app", params, doctype, 400))
        for name, path, query, body, status in cases:
            async with h.http.post(f"{h.url}/wecom/{path}", params=query, data=body) as r:
                assert r.status == status, name
        # Still serving, and nothing above reached the dialogue.
        async with h.http.get(f"{h.url}/healthz") as r:
            assert r.status == 200
        assert h.server.dialogue.store.reply_counts(0) == {}
        _, reply = await h.robot_post(h.robot_text("直客是什么", "m31"))
        assert "直客" in reply["stream"]["content"]

    _run(service, tmp_path, scenario)


def test_admin_reload_from_wecom(own_service: KnowledgeService, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        _, refused = await h.robot_post(h.robot_text("/reload", "m40"))
        assert refused["stream"]["content"] == "这个命令仅限管理员使用。"
        _, report = await h.robot_post(h.robot_text("/reload", "m41", user=ADMIN))
        assert "已重新加载知识库" in report["stream"]["content"]
        status, body = await h.app_post("/stats", "2001", user=ADMIN)
        assert status == 200 and "回答：" in h.app_reply_content(body, user=ADMIN)

    _run(own_service, tmp_path, scenario)


def test_long_app_answers_are_split_by_utf8_bytes(own_service: KnowledgeService,
                                                  knowledge_copy: Path, tmp_path: Path) -> None:
    paragraphs = [f"第{i}段：" + "规则说明" * 100 for i in range(1, 6)]  # ~1.2 KB each
    entry = knowledge_copy / "entries/zhike/zhike-what.md"
    head, _, body = entry.read_text("utf-8").rpartition("---\n")
    english = body[body.index("## English"):]  # every entry keeps its English answer
    entry.write_text(head + "---\n" + "\n\n".join(paragraphs) + "\n\n" + english, "utf-8")
    own_service.reload()

    async def scenario(h: Harness) -> None:
        status, body = await h.app_post("直客是什么", "3001")
        assert (status, body) == (200, "")  # too long for one passive reply
        await _until(lambda: len(h.api.sent) >= 4)
        await asyncio.sleep(0.3)
        contents = [m["text"]["content"] for m in h.api.sent]
        assert all(len(c.encode()) <= 2048 for c in contents)
        joined = "\n\n".join(contents)
        assert all(p in joined for p in paragraphs)  # every paragraph whole, none lost

    _run(own_service, tmp_path, scenario)


def test_serve_runs_wecom_and_stops_cleanly(shared_data: Path,
                                            service: KnowledgeService) -> None:
    port = free_port()
    process = start_serve(shared_data, WECOM_BOT_TOKEN="bot-token", WECOM_BOT_AES_KEY=BOT_KEY,
                          HTTP_HOST="127.0.0.1", HTTP_PORT=str(port), BOT_LOG_LEVEL="INFO")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        robot = WeComCrypto("bot-token", BOT_KEY, "")
        echostr = robot.encrypt("hello-wecom")
        ts = str(int(time.time()))
        query = urllib.parse.urlencode({"msg_signature": robot.signature(ts, "n", echostr),
                                        "timestamp": ts, "nonce": "n", "echostr": echostr})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/wecom/bot?{query}") as r:
            assert r.read() == b"hello-wecom"
    finally:
        code, output = stop_serve(process)
    assert code == 0, output[-2000:]
    assert BOT_KEY not in output and "/wecom/bot" in output and "/metrics" in output


def test_metrics_count_replies_refusals_and_index_size(service: KnowledgeService,
                                                       tmp_path: Path) -> None:
    def value(page: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith(name))

    async def scenario(h: Harness) -> None:
        async with h.http.get(f"{h.url}/metrics") as r:
            before = await r.text()
        await h.robot_post(h.robot_text("直客是什么", "m50"))
        await h.robot_post(h.robot_text("个体店怎么开", "m51"))
        async with h.http.post(f"{h.url}/wecom/bot", data=b"{}") as r:
            assert r.status == 400
        async with h.http.get(f"{h.url}/metrics") as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            after = await r.text()
        for name, grew in (('bot_replies_total{channel="wecom",kind="answer"}', 1),
                           ('bot_replies_total{channel="wecom",kind="clarify"}', 1),
                           ('bot_reply_seconds_count{channel="wecom"}', 2),
                           ('bot_refused_requests_total{channel="wecom",status="400"}', 1)):
            assert value(after, name) - value(before, name) == grew, name
        assert value(after, "bot_index_entries") == len(service.current.kb.entries)

    _run(service, tmp_path, scenario)


def test_api_failures_are_retried_and_the_answer_delivered_once(service: KnowledgeService,
                                                                tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        failures = ["http500", "busy", "expired", "http502"]
        original = h.api.send

        async def flaky(request: web.Request) -> web.Response:
            if failures:
                kind = failures.pop(0)
                h.api.failed = getattr(h.api, "failed", 0) + 1
                if kind.startswith("http"):
                    return web.Response(status=int(kind[4:]), text="upstream error")
                code = {"busy": -1, "expired": 42001}[kind]
                return web.json_response({"errcode": code, "errmsg": kind})
            return await original(request)

        h.api.send = flaky  # the route calls through the attribute below
        status, body = await h.app_post("薯条能带货吗", "4001")
        assert (status, body) == (200, "")
        await _until(lambda: h.api.sent)
        await asyncio.sleep(0.5)
        assert len(h.api.sent) == 1 and h.api.failed == 4
        assert h.api.tokens_issued == 2  # refreshed only after the expired-token answer

    _run(service, tmp_path, scenario, reply_budget=0.0)


# ---------------------------------------------------------------------- hostile input (issue 13)


def test_malformed_payloads_are_refused_with_400_and_counted(service: KnowledgeService,
                                                             tmp_path: Path) -> None:
    def refused(page: str) -> float:
        name = 'bot_refused_requests_total{channel="wecom",status="400"}'
        return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                   if line.startswith(name))

    async def scenario(h: Harness) -> None:
        async with h.http.get(f"{h.url}/metrics") as r:
            before = refused(await r.text())
        unsigned = [b"[" * 65000, b'{"encrypt": ' + b"[" * 30000 + b"]" * 30000 + b"}",
                    b'"just a string"', b"[]", b"{}"]
        for body in unsigned:
            async with h.http.post(f"{h.url}/wecom/bot", data=body,
                                   params=h.signed(h.robot, "x")) as r:
                assert r.status == 400, body[:20]
        # Correctly signed and encrypted, but not the shape WeCom sends.
        signed = [[1, 2, 3], "text", 7, "[" * 5000,
                  {"msgtype": "text", "from": "seller", "text": {"content": "x"}},
                  {"msgtype": "text", "msgid": "z1", "from": {"userid": "s"}, "text": ["x"]},
                  {"msgtype": "stream", "stream": ["not", "an", "object"]}]
        for event in signed:
            plain = event if isinstance(event, str) and event.startswith("[") else \
                json.dumps(event)
            encrypt = h.robot.encrypt(plain)
            async with h.http.post(f"{h.url}/wecom/bot", json={"encrypt": encrypt},
                                   params=h.signed(h.robot, encrypt)) as r:
                assert r.status == 400, event
        async with h.http.get(f"{h.url}/metrics") as r:
            after = refused(await r.text())
        assert after - before == len(unsigned) + len(signed)  # each one counted
        _, reply = await h.robot_post(h.robot_text("直客是什么", "m60"))
        assert "直客" in reply["stream"]["content"]  # still serving

    _run(service, tmp_path, scenario)


async def _post_and_vanish(h: Harness, event: dict) -> None:
    """Post a robot callback and close the socket at once, as a dropped connection does."""
    encrypt = h.robot.encrypt(json.dumps(event, ensure_ascii=False))
    query = urllib.parse.urlencode(h.signed(h.robot, encrypt))
    body = json.dumps({"encrypt": encrypt}).encode()
    port = int(h.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /wecom/bot?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    writer.close()


def test_an_answer_whose_response_was_lost_reaches_the_retry_or_response_url(
        service: KnowledgeService, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        ask = h.server.dialogue.ask

        async def slow_ask(message: Inbound) -> Reply:
            await asyncio.sleep(0.3)  # long enough for the caller to have gone
            return await ask(message)

        h.server.dialogue.ask = slow_ask  # type: ignore[method-assign]
        # Lost in transit, then WeCom retries the same msgid: the retry carries the answer.
        retried = h.robot_text("直客是什么", "m70", response_url=f"{h.api_url}/respond/r70")
        await _post_and_vanish(h, retried)
        # WeCom retries a few seconds later; by then the answer is ready (waiting for that, not
        # for a fixed time, keeps the test true on a loaded machine).
        await _until(lambda: (s := h.server.by_msgid.get("m70")) is not None and s.finished)
        status, reply = await h.robot_post(retried)
        assert status == 200 and reply["stream"]["finish"] and "直客" in reply["stream"]["content"]
        # Lost in transit and never retried: response_url carries it.
        lost = h.robot_text("薯条能带货吗", "m71", response_url=f"{h.api_url}/respond/r71")
        await _post_and_vanish(h, lost)
        [posted] = await _until(lambda: h.api.responses)
        assert posted["id"] == "r71" and "内容加热" in posted["markdown"]["content"]
        await asyncio.sleep(0.5)
        assert len(h.api.responses) == 1  # the retried one was delivered once, by the retry

    _run(service, tmp_path, scenario)


def test_messages_without_a_msgid_from_two_users_are_both_answered(
        service: KnowledgeService, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        for user in ("seller-a", "seller-b"):
            event = h.robot_text("直客是什么", "", user=user)
            del event["msgid"]
            status, reply = await h.robot_post(event)
            assert status == 200 and reply is not None, user
            assert "直客" in reply["stream"]["content"]

    _run(service, tmp_path, scenario)


class _RedirectingAPI(FakeWeComAPI):
    """gettoken loops on redirects twice, then issues a token; message/send always loops."""

    def __init__(self) -> None:
        super().__init__()
        self.loops = 0
        self.sends = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self.token_or_loop)
        app.router.add_post("/cgi-bin/message/send", self.loop)
        return app

    async def token_or_loop(self, request: web.Request) -> web.Response:
        self.loops += 1
        if self.loops <= 2 * 10:  # aiohttp gives up after 10 redirected requests
            raise web.HTTPFound(str(request.rel_url))
        return web.json_response({"errcode": 0, "access_token": "ACCESS-TOKEN-0123456789",
                                  "expires_in": 7200})

    async def loop(self, request: web.Request) -> web.Response:
        self.sends += 1
        raise web.HTTPTemporaryRedirect(str(request.rel_url))


def test_secrets_from_dotenv_and_access_tokens_never_reach_the_log(
        shared_data: Path, service: KnowledgeService, tmp_path: Path) -> None:
    api = _RedirectingAPI()

    async def fake_api(ready: asyncio.Future, stop: asyncio.Event) -> None:
        runner = web.AppRunner(api.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ready.set_result(_url(runner))
        await stop.wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready: asyncio.Future = loop.create_future()
    thread = threading.Thread(target=loop.run_until_complete, args=(fake_api(ready, stop),),
                              daemon=True)
    thread.start()
    while not ready.done():
        time.sleep(0.02)
    secret = "corp-secret-only-in-dotenv-42"
    # The secret is set only in .env, in the directory the bot starts from.
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"WECOM_APP_SECRET={secret}\n", "utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_", "REDIS_"))}
    env.update(BOT_DATA_DIR=str(shared_data), WECOM_APP_TOKEN="app-token",
               WECOM_APP_AES_KEY=APP_KEY, WECOM_CORP_ID=CORP, WECOM_APP_AGENT_ID="1000002",
               WECOM_API_BASE_URL=ready.result(), WECOM_REPLY_BUDGET="0",
               HTTP_HOST="127.0.0.1", HTTP_PORT=str(port), BOT_LOG_LEVEL="INFO")
    process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=work,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        crypto = WeComCrypto("app-token", APP_KEY, CORP)
        inner = (f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA["
                 f"seller]]></FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType>"
                 "<![CDATA[text]]></MsgType><Content><![CDATA[直客是什么]]></Content><MsgId>5001"
                 "</MsgId><AgentID>1000002</AgentID></xml>")
        encrypt = crypto.encrypt(inner)
        ts = str(int(time.time()))
        query = urllib.parse.urlencode({"msg_signature": crypto.signature(ts, "n", encrypt),
                                        "timestamp": ts, "nonce": "n"})
        request = urllib.request.Request(f"http://127.0.0.1:{port}/wecom/app?{query}",
                                         f"<xml><Encrypt>{encrypt}</Encrypt></xml>".encode())
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        deadline = time.monotonic() + 30
        while api.sends < 3 * 10:  # two looping gettokens, then three looping sends
            assert time.monotonic() < deadline, (api.loops, api.sends)
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    assert output.count("message/send failed") == 5, output[-3000:]
    # The URLs were logged (with the redirects), their secrets masked.
    assert "corpsecret=***" in output and "access_token=***" in output, output[-3000:]
    assert secret not in output and "ACCESS-TOKEN-0123456789" not in output
