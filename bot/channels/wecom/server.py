"""WeCom channel: the intelligent robot (JSON, 1:1 and group @-mentions) and the self-built app
(XML, 1:1), on one aiohttp server with /healthz.

Every request is size-capped, signature-checked, decrypted (padding and receiveid checked),
time-windowed and de-duplicated on its message id before it reaches the dialogue; anything
malformed is refused with a status and never crashes the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import aiohttp
from aiohttp import web
from defusedxml import ElementTree as SafeXML
from defusedxml.common import DefusedXmlException

from bot.channels.admin import ADMIN_COMMANDS
from bot.channels.frontdesk import FrontDesk, Inbound
from bot.channels.render import render, split_message
from bot.channels.wecom.crypto import WeComCrypto, WeComCryptoError
from bot.copy import say
from bot.dialogue.senses import language
from bot.ops import logsafe, metrics
from bot.ops import server as http
from bot.settings import Environment

log = logging.getLogger(__name__)

CHANNEL = "wecom"
MAX_APP_BYTES = 2048  # WeCom's limit for one text message
MAX_STREAM_BYTES = 20480
TOKEN_INVALID = {40001, 40014, 42001}
_MENTION = re.compile(r"^\s*@\S+\s*")


@dataclass(frozen=True)
class WeComConfig:
    """WeCom settings from the environment; secrets never appear in repr or logs."""

    bot_token: str = field(default="", repr=False)
    bot_aes_key: str = field(default="", repr=False)
    corp_id: str = ""
    app_token: str = field(default="", repr=False)
    app_aes_key: str = field(default="", repr=False)
    app_secret: str = field(default="", repr=False)
    agent_id: str = ""
    api_base_url: str = "https://qyapi.weixin.qq.com"
    host: str = "127.0.0.1"
    port: int = 8080
    reply_budget: float = 3.0  # seconds an answer may take and still go back passively
    stream_grace: float = 10.0  # after this, an answer no refresh collected goes to response_url
    max_body: int = 64 * 1024
    time_window: float = 600.0  # seconds a callback's timestamp may be off
    dedup_ttl: float = 2 * 3600.0

    @classmethod
    def from_environment(cls, e: Environment) -> WeComConfig | None:
        """Read WECOM_* and HTTP_* from the validated environment; None when unconfigured."""
        config = cls(
            bot_token=e.secret("WECOM_BOT_TOKEN"), bot_aes_key=e.secret("WECOM_BOT_AES_KEY"),
            corp_id=e.WECOM_CORP_ID, app_token=e.secret("WECOM_APP_TOKEN"),
            app_aes_key=e.secret("WECOM_APP_AES_KEY"), app_secret=e.secret("WECOM_APP_SECRET"),
            agent_id=e.WECOM_APP_AGENT_ID, api_base_url=e.WECOM_API_BASE_URL.rstrip("/"),
            host=e.HTTP_HOST, port=e.HTTP_PORT, reply_budget=e.WECOM_REPLY_BUDGET)
        return config if config.robot_enabled or config.app_enabled else None

    @property
    def robot_enabled(self) -> bool:
        return bool(self.bot_token)

    @property
    def app_enabled(self) -> bool:
        return bool(self.app_token)


class Refused(Exception):
    """A request refused before it reached the dialogue."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Stream:
    """One robot answer in progress: WeCom polls it by id until it is finished."""

    id: str
    response_url: str
    content: str = ""
    finished: bool = False
    delivered: bool = False


class AccessToken:
    """The app's access token: fetched once, cached, refreshed when WeCom rejects it."""

    def __init__(self, config: WeComConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self, refresh: bool = False) -> str:
        async with self._lock:
            if refresh or not self._token or time.monotonic() >= self._expires:
                url = f"{self.config.api_base_url}/cgi-bin/gettoken"
                params = {"corpid": self.config.corp_id, "corpsecret": self.config.app_secret}
                async with self.session.get(url, params=params) as response:
                    data = await response.json(content_type=None)
                if data.get("errcode", 0) != 0 or not data.get("access_token"):
                    raise RuntimeError(f"gettoken failed: errcode {data.get('errcode')}")
                self._token = data["access_token"]
                logsafe.mask(self._token)  # it authorises sends: never in a log line
                # Renew five minutes early rather than send with a token about to lapse.
                self._expires = time.monotonic() + max(int(data.get("expires_in", 7200)) - 300, 60)
            return self._token


def _configured(crypto: WeComCrypto | None) -> WeComCrypto:
    """Return an endpoint's crypto; its routes are installed only when it is configured."""
    if crypto is None:
        raise RuntimeError("this WeCom endpoint is not configured")
    return crypto


class WeComServer:
    """The aiohttp application serving both WeCom callbacks."""

    def __init__(self, dialogue: FrontDesk, config: WeComConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.dialogue = dialogue
        self.config = config
        self.clock = clock
        self.robot = (WeComCrypto(config.bot_token, config.bot_aes_key, "")
                      if config.robot_enabled else None)
        self.app_crypto = (WeComCrypto(config.app_token, config.app_aes_key, config.corp_id)
                           if config.app_enabled else None)
        self.streams: dict[str, Stream] = {}
        self.by_msgid: dict[str, Stream] = {}  # a retried callback gets its stream again
        self.tasks: set[asyncio.Task] = set()
        self.session: aiohttp.ClientSession | None = None
        self.token: AccessToken | None = None

    def application(self) -> web.Application:
        """Build a whole HTTP application around these routes (healthz, metrics too)."""
        return http.application(self, max_body=self.config.max_body)

    def install(self, app: web.Application) -> None:
        """Add the callback routes and the client session's lifecycle to app."""
        if self.robot:
            app.router.add_get("/wecom/bot", self._guard(self.verify_robot_url))
            app.router.add_post("/wecom/bot", self._guard(self.robot_message))
        if self.app_crypto:
            app.router.add_get("/wecom/app", self._guard(self.verify_app_url))
            app.router.add_post("/wecom/app", self._guard(self.app_message))
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.token = AccessToken(self.config, self.session)

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:  # created when the server starts
            raise RuntimeError("the WeCom server has not started")
        return self.session

    async def _stop(self, app: web.Application) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session:
            await self.session.close()

    def _guard(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
               ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Turn every refusal into its status; nothing malformed escapes as a 500."""
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except (Refused, WeComCryptoError) as exc:
                status, reason = exc.status, str(exc)
            except web.HTTPRequestEntityTooLarge:
                status, reason = 413, "body too large"
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                # Whatever a malformed payload trips over is the sender's fault, not ours.
                status, reason = 400, f"malformed request ({type(exc).__name__})"
            metrics.REFUSED.labels(CHANNEL, str(status)).inc()
            log.warning("wecom %s refused (%d): %s", request.path, status, reason)
            response = web.Response(status=status, text=reason)
            if status in (408, 413):
                response.force_close()  # the rest of that body is not worth reading
            return response
        return guarded

    # ------------------------------------------------------------------ URL verification

    async def verify_robot_url(self, request: web.Request) -> web.Response:
        return self._verify_url(request, _configured(self.robot))

    async def verify_app_url(self, request: web.Request) -> web.Response:
        return self._verify_url(request, _configured(self.app_crypto))

    def _verify_url(self, request: web.Request, crypto: WeComCrypto) -> web.Response:
        q = request.query
        echostr = q.get("echostr", "")
        if not echostr:
            raise Refused(400, "missing echostr")
        plain = crypto.open(q.get("msg_signature", ""), q.get("timestamp", ""),
                            q.get("nonce", ""), echostr)
        return web.Response(text=plain)

    # ------------------------------------------------------------------ the robot (JSON)

    async def robot_message(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        body = await self._body(request)
        try:
            encrypt = json.loads(body)["encrypt"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise Refused(400, "body is not {\"encrypt\": ...}") from exc
        self._check_time(q.get("timestamp", ""))
        try:
            event = json.loads(_configured(self.robot).open(q.get("msg_signature", ""),
                                                            q.get("timestamp", ""),
                                                            q.get("nonce", ""), str(encrypt)))
        except (ValueError, RecursionError) as exc:
            raise Refused(400, "decrypted body is not JSON") from exc
        if not isinstance(event, dict):
            raise Refused(400, "decrypted body is not a JSON object")
        nonce = q.get("nonce", "")
        kind = event.get("msgtype")
        if kind == "stream":
            stream = self.streams.get(str((event.get("stream") or {}).get("id", "")))
            if stream is None:
                return web.Response(text="")
            return await self._deliver(request, stream, nonce)
        if kind != "text":
            return web.Response(text="")  # events, images…: nothing to answer
        msgid = str(event.get("msgid") or "")
        # Without a msgid nothing tells a retry from a new message: answer it.
        if msgid and not await self._first(f"robot:{msgid}"):
            # A retry: the first response may never have arrived, so send the stream again
            # (same id, so WeCom shows one answer) rather than nothing.
            known = self.by_msgid.get(msgid)
            if known is None:
                return web.Response(text="")
            return await self._deliver(request, known, nonce)
        user = str((event.get("from") or {}).get("userid", ""))
        group = event.get("chattype") == "group"
        chat = str(event.get("chatid") or user) if group else f"single:{user}"
        text = _MENTION.sub("", str((event.get("text") or {}).get("content", "")), count=1)
        stream = Stream(uuid.uuid4().hex, str(event.get("response_url", "")))
        self.streams[stream.id] = stream
        if msgid:
            self.by_msgid[msgid] = stream
        answer = self._spawn(self._respond(Inbound(CHANNEL, chat, user, text, group)))
        # Wait within the budget; if the answer is late the stream stays open, and refresh
        # callbacks (or, failing those, response_url) deliver it.
        await asyncio.wait({answer}, timeout=self.config.reply_budget)
        self._spawn(self._finish_stream(stream, answer))
        if answer.done() and not answer.cancelled() and answer.exception() is None:
            stream.content, stream.finished = _fit(answer.result(), MAX_STREAM_BYTES), True
        return await self._deliver(request, stream, nonce)

    async def _finish_stream(self, stream: Stream, answer: asyncio.Task) -> None:
        try:
            stream.content = _fit(await answer, MAX_STREAM_BYTES)
        except Exception:
            metrics.ERRORS.labels(CHANNEL).inc()
            log.exception("wecom robot answer failed")
            stream.content = "抱歉，处理这个问题时出错了，请稍后再问。"
        stream.finished = True
        await asyncio.sleep(self.config.stream_grace)
        if not stream.delivered and stream.response_url:
            await self._post_response_url(stream)
        self.streams.pop(stream.id, None)
        for msgid in [m for m, s in self.by_msgid.items() if s is stream]:
            self.by_msgid.pop(msgid, None)

    async def _deliver(self, request: web.Request, stream: Stream,
                       nonce: str) -> web.StreamResponse:
        """Send the stream's state now; a finished answer counts as delivered only once it
        was written to a connection still open (else response_url carries it later)."""
        finished = stream.finished
        response = self._robot_reply(self._stream_body(stream), nonce)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            log.info("wecom robot caller left before its answer was written; it goes to "
                     "a retry or to response_url")
            return response
        if finished:
            stream.delivered = True
        return response

    def _stream_body(self, stream: Stream) -> dict:
        return {"msgtype": "stream", "stream": {
            "id": stream.id, "finish": stream.finished,
            "content": stream.content if stream.finished else say("zh", "thinking")}}

    async def _post_response_url(self, stream: Stream) -> None:
        payload = {"msgtype": "markdown", "markdown": {"content": stream.content}}
        session = self._session()
        try:
            async with session.post(stream.response_url, json=payload) as response:
                data = await response.json(content_type=None)
            if data.get("errcode", 0) != 0:
                log.error("wecom response_url refused the answer: errcode %s",
                          data.get("errcode"))
            else:
                stream.delivered = True
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.error("wecom response_url delivery failed: %s", exc)

    def _robot_reply(self, payload: dict, nonce: str) -> web.Response:
        timestamp = str(int(self.clock()))
        robot = _configured(self.robot)
        encrypt = robot.encrypt(json.dumps(payload, ensure_ascii=False))
        body = {"encrypt": encrypt, "msgsignature": robot.signature(timestamp, nonce, encrypt),
                "timestamp": int(timestamp), "nonce": nonce}
        return web.json_response(body)

    # ------------------------------------------------------------------ the app (XML)

    async def app_message(self, request: web.Request) -> web.Response:
        q = request.query
        outer = _parse_xml(await self._body(request))
        encrypt = outer.findtext("Encrypt") or ""
        if not encrypt:
            raise Refused(400, "no Encrypt element")
        self._check_time(q.get("timestamp", ""))
        inner = _parse_xml(_configured(self.app_crypto).open(q.get("msg_signature", ""),
                                                             q.get("timestamp", ""),
                                                             q.get("nonce", ""),
                                                             encrypt).encode())
        if inner.findtext("MsgType") != "text":
            return web.Response(text="")
        user = inner.findtext("FromUserName") or ""
        msgid = inner.findtext("MsgId") or ""
        if msgid and not await self._first(f"app:{msgid}"):
            return web.Response(text="")
        message = Inbound(CHANNEL, f"app:{user}", user, inner.findtext("Content") or "")
        answer = self._spawn(self._respond(message))
        await asyncio.wait({answer}, timeout=self.config.reply_budget)
        if not answer.done():
            # Too slow for a passive reply: answer 200 now, send through the API when ready.
            self._spawn(self._send_later(user, answer))
            return web.Response(text="")
        parts = split_message(answer.result(), MAX_APP_BYTES, _utf8)
        if len(parts) == 1:
            return self._app_reply(user, parts[0], q.get("nonce", ""))
        self._spawn(self._send_parts(user, parts))
        return web.Response(text="")

    async def _send_later(self, user: str, answer: asyncio.Task) -> None:
        text = await answer
        await self._send_parts(user, split_message(text, MAX_APP_BYTES, _utf8))

    async def _send_parts(self, user: str, parts: list[str]) -> None:
        for part in parts:
            await self.send_text(user, part)

    async def send_text(self, user: str, content: str, attempts: int = 5) -> bool:
        """Send one text through message/send.

        A rejected token is refreshed and the send retried; 5xx answers, "system busy" (-1)
        and network errors are retried with backoff. A message WeCom refused is not resent.
        """
        payload = {"touser": user, "msgtype": "text", "agentid": int(self.config.agent_id),
                   "text": {"content": content}}
        session, access = self._session(), self.token
        if access is None:  # set together with the session when the server starts
            raise RuntimeError("the WeCom server has not started")
        refresh = False
        for attempt in range(1, attempts + 1):
            try:
                token = await access.get(refresh=refresh)
                refresh = False
                async with session.post(f"{self.config.api_base_url}/cgi-bin/message/send",
                                        params={"access_token": token},
                                        json=payload) as response:
                    if response.status >= 500:
                        raise RuntimeError(f"HTTP {response.status}")
                    data = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError, RuntimeError) as exc:
                log.warning("wecom message/send failed (attempt %d): %s", attempt, exc)
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
                continue
            code = data.get("errcode", 0)
            if code == 0:
                return True
            refresh = code in TOKEN_INVALID
            if not refresh and code != -1:
                metrics.ERRORS.labels(CHANNEL).inc()
                log.error("wecom message/send refused: errcode %s", code)
                return False
            log.warning("wecom message/send errcode %s (attempt %d); retrying", code, attempt)
        metrics.ERRORS.labels(CHANNEL).inc()
        log.error("wecom message/send gave up after %d attempts", attempts)
        return False

    def _app_reply(self, user: str, content: str, nonce: str) -> web.Response:
        timestamp = str(int(self.clock()))
        plain = (f"<xml><ToUserName>{_cdata(user)}</ToUserName>"
                 f"<FromUserName>{_cdata(self.config.corp_id)}</FromUserName>"
                 f"<CreateTime>{timestamp}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
                 f"<Content>{_cdata(content)}</Content></xml>")
        app_crypto = _configured(self.app_crypto)
        encrypt = app_crypto.encrypt(plain)
        signature = app_crypto.signature(timestamp, nonce, encrypt)
        body = (f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt>"
                f"<MsgSignature>{_cdata(signature)}</MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>")
        return web.Response(text=body, content_type="application/xml")

    # ------------------------------------------------------------------ shared

    async def _respond(self, message: Inbound) -> str:
        """Answer a message (or run an admin command) and render it as plain text."""
        words = message.text.strip().split(maxsplit=1)
        command = words[0][1:].lower() if words and words[0].startswith("/") else ""
        if command in ADMIN_COMMANDS:
            argument = words[1] if len(words) > 1 else ""
            return render(await self.dialogue.admin(message, command, argument), "text")
        if command in ("help", "start"):
            return render(self.dialogue.help(language(message.text)), "text")
        return render(await self.dialogue.ask(message), "text")

    async def _body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self.config.max_body:
            raise Refused(413, "body too large")
        try:
            return await http.read_body(request)
        except web.HTTPRequestEntityTooLarge as exc:
            raise Refused(413, "body too large") from exc
        except http.SlowBody as exc:
            raise Refused(408, str(exc)) from exc

    def _check_time(self, timestamp: str) -> None:
        try:
            skew = abs(self.clock() - int(timestamp))
        except ValueError as exc:
            raise Refused(400, "bad timestamp") from exc
        if skew > self.config.time_window:
            raise Refused(403, "timestamp outside the allowed window (replay?)")

    async def _first(self, key: str) -> bool:
        return await self.dialogue.first_sighting(key, self.config.dedup_ttl)

    def _spawn(self, coroutine: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def _parse_xml(data: bytes) -> Element:
    """Parse XML without DTDs or entities (no XXE, no entity bombs)."""
    try:
        return SafeXML.fromstring(data, forbid_dtd=True)
    except (DefusedXmlException, SafeXML.ParseError, ValueError) as exc:
        raise Refused(400, f"refused XML: {type(exc).__name__}") from exc


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _utf8(text: str) -> int:
    return len(text.encode())


def _fit(text: str, limit: int) -> str:
    """Cut text to at most limit UTF-8 bytes (the stream holds one message)."""
    data = text.encode()
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


@dataclass(frozen=True)
class WeComChannel:
    """The WeCom channel as the registry sees it: callbacks on the bot's HTTP server."""

    config: WeComConfig
    name: str = CHANNEL

    def admins(self, env: Environment) -> frozenset[str]:
        return frozenset(i for i in env.BOT_ADMIN_WECOM_IDS.split(",") if i)

    def routes(self, desk: FrontDesk) -> list[http.Routes]:
        return [WeComServer(desk, self.config)]

    async def run(self, desk: FrontDesk, stop: asyncio.Event) -> None:
        return None  # it answers callbacks on the shared HTTP server


def plug(env: Environment) -> WeComChannel | None:
    """Return the channel when the robot's or the app's credentials are set."""
    config = WeComConfig.from_environment(env)
    return WeComChannel(config) if config else None
