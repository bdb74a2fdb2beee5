"""A fake Telegram Bot API server on 127.0.0.1: serves updates, records every call.

It speaks enough of the Bot API for python-telegram-bot 22: getMe, getUpdates (long polling,
offsets), sendMessage (HTML checked the way Telegram checks it), editMessageText,
answerCallbackQuery, setMyCommands, setWebhook, deleteWebhook. Tests can make the next calls
of a method fail (for example with 429 and retry_after).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from bot.channels import telegram as tg
from bot.channels.frontdesk import FrontDesk

BOT = {"id": 999, "is_bot": True, "first_name": "Bot", "username": "faq_bot",
       "can_join_groups": True, "can_read_all_group_messages": False,
       "supports_inline_queries": False}
_JSON_FIELDS = {"chat_id", "reply_markup", "reply_parameters", "entities", "commands", "scope",
                "allowed_updates", "message_id", "offset", "timeout", "limit", "show_alert",
                "disable_web_page_preview", "link_preview_options"}
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                 "tg-spoiler", "span", "blockquote"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int = 200  # what the fake answered: 0 for a dropped connection
    at: float = field(default_factory=time.perf_counter)  # when the call arrived


@dataclass
class FakeTelegram:
    """The server's state; start() binds a free port on 127.0.0.1."""

    calls: list[Call] = field(default_factory=list)
    failures: dict[str, list[int | str]] = field(default_factory=dict)  # status, "drop", "slow"
    on_call: Callable[[Call], None] | None = None  # told of every answered call (load drivers)
    _updates: list[dict] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _message_ids: Any = field(default_factory=lambda: itertools.count(1000))

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass  # the calls are recorded; stderr stays quiet

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                # A long poll still open when the bot shuts down finds its client gone.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_port}"

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ test helpers

    def push(self, update: dict) -> dict:
        """Queue an update (an update_id is added) for the bot's next getUpdates."""
        with self._cond:
            update = {"update_id": next(self._ids), **update}
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def message(self, text: str, chat_id: int = 100, user_id: int = 1, chat_type: str = "private",
                entities: list[dict] | None = None, reply_to: dict | None = None) -> dict:
        """Queue a text message from a user; returns the message."""
        message = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type,
                     **({"title": "卖家群"} if chat_type != "private" else {})},
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "text": text,
        }
        if entities is None and text.startswith("/"):
            command = text.split()[0]
            entities = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        self.push({"message": message})
        return message

    def press(self, message: dict, data: str, user_id: int) -> None:
        """Queue a press on an inline button of a message the bot sent."""
        self.push({"callback_query": {
            "id": str(next(self._ids)), "chat_instance": "ci", "data": data,
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "message": message}})

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Messages the bot sent successfully (failed attempts are in calls, not here)."""
        return [c for c in self.calls_to("sendMessage") if c.status == 200
                and (chat_id is None or c.params.get("chat_id") == chat_id)]

    def wait(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until predicate() is truthy and return it; fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting; calls so far: "
                             f"{[c.method for c in self.calls]}")

    def wait_sent(self, count: int, chat_id: int | None = None) -> list[Call]:
        return self.wait(lambda: (s := self.sent(chat_id)) and len(s) >= count and s)

    def quiet(self, seconds: float = 1.0) -> None:
        """Let the bot work for a while (to show that nothing is sent)."""
        time.sleep(seconds)

    # ------------------------------------------------------------------ the API

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?")[0]
        method = path.rsplit("/", 1)[-1]
        params = _params(request)
        with self._cond:
            call = Call(method, params)
            self.calls.append(call)
            pending = self.failures.get(method)
            status = pending.pop(0) if pending else 0
        call.status = status or 200
        if status == "drop":  # the connection dies without an answer
            call.status = 0
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return None
        if status == "slow":  # longer than the client waits
            time.sleep(6)
            call.status = 200
            status = 0
        if status == 429:
            return _respond(request, 429, {"ok": False, "error_code": 429,
                                           "description": "Too Many Requests: retry after 1",
                                           "parameters": {"retry_after": 1}})
        if status:
            return _respond(request, status, {"ok": False, "error_code": status,
                                              "description": "Internal Server Error"})
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _respond(request, 200, {"ok": True, "result": True})
        code, result = handler(params)
        call.status = code
        body = ({"ok": True, "result": result} if code == 200
                else {"ok": False, "error_code": code, "description": result})
        _respond(request, code, body)
        if self.on_call is not None:
            self.on_call(call)

    def _api_getMe(self, params: dict) -> tuple[int, Any]:
        return 200, BOT

    def _api_getUpdates(self, params: dict) -> tuple[int, Any]:
        offset = int(params.get("offset") or 0)
        limit = min(int(params.get("limit") or 100), 100)  # Telegram's default and maximum
        timeout = min(float(params.get("timeout") or 0), 1.0)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return 200, self._updates[:limit]

    def _api_sendMessage(self, params: dict) -> tuple[int, Any]:
        text = params.get("text", "")
        if params.get("parse_mode") == "HTML":
            problem = html_problem(text)
            if problem:
                return 400, f"Bad Request: can't parse entities: {problem}"
        if len(text) > 4096:
            return 400, "Bad Request: message is too long"
        chat_id = params["chat_id"]
        message = {"message_id": next(self._message_ids), "date": int(time.time()),
                   "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                   "from": BOT, "text": text}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return 200, message

    def _api_editMessageText(self, params: dict) -> tuple[int, Any]:
        problem = html_problem(params.get("text", "")) if params.get("parse_mode") else ""
        if problem:
            return 400, f"Bad Request: can't parse entities: {problem}"
        return 200, {"message_id": params.get("message_id", 1), "date": int(time.time()),
                     "chat": {"id": params.get("chat_id", 1), "type": "private"},
                     "text": params.get("text", "")}


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problem = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in _ALLOWED_TAGS:
            self.problem = self.problem or f"unsupported start tag \"{tag}\""
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problem = self.problem or f"unmatched end tag \"{tag}\""

    def handle_entityref(self, name: str) -> None:
        if name not in {"lt", "gt", "amp", "quot"}:
            self.problem = self.problem or f"unsupported entity &{name};"


def html_problem(text: str) -> str:
    """Return why Telegram would refuse text in HTML parse mode, or ""."""
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    if checker.stack and not checker.problem:
        return f"unclosed tag \"{checker.stack[-1]}\""
    return checker.problem


def _params(request: BaseHTTPRequestHandler) -> dict[str, Any]:
    length = int(request.headers.get("Content-Length") or 0)
    raw = request.rfile.read(length) if length else b""
    kind = request.headers.get("Content-Type", "")
    if kind.startswith("application/json"):
        return json.loads(raw or b"{}")
    if kind.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {kind}\r\n\r\n".encode() + raw)
        fields = {part.get_param("name", header="content-disposition"):
                  part.get_content() for part in message.iter_parts()}
    else:
        fields = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    return {k: json.loads(v) if k in _JSON_FIELDS and isinstance(v, str) else v
            for k, v in fields.items()}


def _respond(request: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    data = json.dumps(body, ensure_ascii=False).encode()
    request.send_response(status)
    request.send_header("Content-Type", "application/json")
    request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    request.wfile.write(data)


class RunningBot:
    """The Application serving in its own thread and event loop, as `serve` runs it."""

    def __init__(self, dialogue: FrontDesk, config: tg.TelegramConfig) -> None:
        self.dialogue = dialogue
        self.config = config
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._thread, daemon=True)

    def _thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        application = tg.build_application(self.dialogue, self.config)

        async def started() -> None:
            # Long polling runs PTB's updater; a webhook is served by the bot's own server.
            while not (application.running and (self.config.webhook_url or (
                    application.updater and application.updater.running))):
                await asyncio.sleep(0.01)
            self.ready.set()

        waiter = asyncio.create_task(started())
        await tg.run(application, self.config, self.stop)
        waiter.cancel()

    def start(self) -> RunningBot:
        self.thread.start()
        assert self.ready.wait(30), "the bot did not start"
        if self.error:
            raise self.error
        return self

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the bot did not stop"
        if self.error:
            raise self.error
