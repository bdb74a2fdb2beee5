"""Telegram channel: python-telegram-bot 22 Application, long polling or webhook.

Private chats: every text is a question. Groups: only /ask, @mentions of the bot and replies to
the bot's own messages, answered quoting the asker. Clarifying options, related questions and
feedback travel as inline buttons whose callback data stays under 64 bytes.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

from aiohttp import web
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError, TimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.channels.admin import ADMIN_COMMANDS
from bot.channels.frontdesk import FrontDesk, Inbound
from bot.channels.render import render, split_message
from bot.copy import say
from bot.dialogue.replies import Reply
from bot.ops import metrics
from bot.ops import server as http
from bot.ops.server import Routes, StartupError, lifecycle
from bot.settings import Environment

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_TEXT = 4096
MAX_CALLBACK = 64
MAX_UPDATE = 1024 * 1024  # bytes: an update is a few KB; anything near this is not Telegram
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PUBLIC_COMMANDS = [BotCommand(c, say("zh", f"menu_{c}")) for c in ("ask", "help", "start")]
ADMIN_MENU = [BotCommand(c, say("zh", f"menu_{c}")) for c in ADMIN_COMMANDS]


@dataclass(frozen=True)
class TelegramConfig:
    """Telegram settings from the environment; the token never appears in repr or logs."""

    token: str = field(repr=False)
    base_url: str = "https://api.telegram.org/bot"
    webhook_url: str = ""
    webhook_secret: str = field(default="", repr=False)
    listen: str = "127.0.0.1"
    port: int = 8443
    overall_rate: float = 30.0  # messages per second across all chats (Telegram's guidance)

    @classmethod
    def from_environment(cls, e: Environment) -> TelegramConfig | None:
        """Read TELEGRAM_* from the validated environment; None when no token is set."""
        token = e.secret("TELEGRAM_BOT_TOKEN").strip()
        if not token:
            return None
        return cls(token=token, base_url=e.TELEGRAM_API_BASE_URL.strip() or cls.base_url,
                   webhook_url=e.TELEGRAM_WEBHOOK_URL.strip(),
                   webhook_secret=e.secret("TELEGRAM_WEBHOOK_SECRET").strip(),
                   listen=e.TELEGRAM_WEBHOOK_LISTEN, port=e.TELEGRAM_WEBHOOK_PORT,
                   overall_rate=e.TELEGRAM_OVERALL_RATE)

    @property
    def file_url(self) -> str:
        base = self.base_url.rstrip("/")
        return base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"


@dataclass(frozen=True)
class TelegramChannel:
    """The Telegram channel as the registry sees it."""

    config: TelegramConfig
    name: str = CHANNEL

    def admins(self, env: Environment) -> frozenset[str]:
        return frozenset(i for i in env.BOT_ADMIN_TELEGRAM_IDS.split(",") if i)

    def routes(self, desk: FrontDesk) -> list[Routes]:
        return []  # long polling, or a webhook on its own port (TELEGRAM_WEBHOOK_PORT)

    async def run(self, desk: FrontDesk, stop: asyncio.Event) -> None:
        await run(build_application(desk, self.config), self.config, stop)


def plug(env: Environment) -> TelegramChannel | None:
    """Return the channel when TELEGRAM_BOT_TOKEN is set."""
    config = TelegramConfig.from_environment(env)
    return TelegramChannel(config) if config else None


def build_application(dialogue: FrontDesk, config: TelegramConfig) -> Application:
    """Assemble the Application with every handler; nothing runs until it is started."""
    application = (
        Application.builder()
        .token(config.token)
        .base_url(config.base_url)
        .base_file_url(config.file_url)
        # Queues sends within Telegram's flood limits and retries 429 RetryAfter.
        .rate_limiter(AIORateLimiter(overall_max_rate=config.overall_rate, max_retries=3))
        .concurrent_updates(64)  # one slow reply must not hold up other chats
        .build()
    )
    application.bot_data["dialogue"] = dialogue
    application.add_handler(CommandHandler(["start", "help"], on_help))
    application.add_handler(CommandHandler("ask", on_ask))
    application.add_handler(CommandHandler(list(ADMIN_COMMANDS), on_admin))
    application.add_handler(CallbackQueryHandler(on_button))
    text = filters.TEXT & ~filters.COMMAND
    application.add_handler(MessageHandler(text & filters.ChatType.PRIVATE, on_private_text))
    application.add_handler(MessageHandler(text & filters.ChatType.GROUPS, on_group_text))
    application.add_error_handler(on_error)
    return application


async def run(application: Application, config: TelegramConfig, stop: asyncio.Event) -> None:
    """Serve until stop is set: long polling, or a webhook when TELEGRAM_WEBHOOK_URL is set.

    An unreachable Bot API at start is retried with back-off (one line each time); a token
    the server rejects ends the run with a StartupError naming the variable.
    """
    updater = application.updater
    if updater is None:  # build_application keeps the builder's default Updater
        raise RuntimeError("the Telegram application has no updater")
    delay = 1.0
    while True:
        try:
            await application.initialize()
            break
        except InvalidToken as exc:
            raise StartupError("TELEGRAM_BOT_TOKEN: Telegram rejected this token; copy it "
                               "again from @BotFather") from exc
        except NetworkError as exc:
            log.warning("telegram API unreachable (%s); retrying in %.0f s",
                        type(exc).__name__, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except TimeoutError:
                delay = min(delay * 2, 60.0)
    lifecycle.info("telegram: connected as @%s (%s)", application.bot.username,
                "webhook" if config.webhook_url else "long polling")
    await _register_commands(application)
    await application.start()
    updates = [Update.MESSAGE, Update.CALLBACK_QUERY]
    try:
        if config.webhook_url:
            # The bot's own guarded HTTP server, not python-telegram-bot's (which buffers up
            # to 100 MB before it looks at the secret).
            await application.bot.set_webhook(config.webhook_url, allowed_updates=updates,
                                              secret_token=config.webhook_secret)
            site = web.Application(client_max_size=MAX_UPDATE)
            Webhook(application, config).install(site)
            await http.serve(site, config.listen, config.port, stop,
                             variable="TELEGRAM_WEBHOOK_PORT")
        else:
            await updater.start_polling(allowed_updates=updates,
                                        error_callback=_polling_error)
            log.info("telegram long polling started")
            await stop.wait()
    finally:
        if updater.running:
            await updater.stop()
        await application.stop()
        await application.shutdown()


class Webhook:
    """Updates POSTed by Telegram: the secret is checked before the body is read, and the
    body is capped at MAX_UPDATE bytes and BODY_TIMEOUT seconds."""

    def __init__(self, application: Application, config: TelegramConfig) -> None:
        self.application = application
        self.path = "/" + urlparse(config.webhook_url).path.lstrip("/")
        self.secret = config.webhook_secret.encode()

    def install(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not self.secret or not hmac.compare_digest(given, self.secret):
            return _refuse(403, "wrong or missing secret token")
        if request.content_length is not None and request.content_length > MAX_UPDATE:
            return _refuse(413, "update too large")
        try:
            body = await http.read_body(request)
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, "update too large")
        except http.SlowBody as exc:
            return _refuse(408, str(exc))
        try:
            update = Update.de_json(json.loads(body), self.application.bot)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            return _refuse(400, f"not an update ({type(exc).__name__})")
        await self.application.update_queue.put(update)
        return web.Response()


def _refuse(status: int, reason: str) -> web.Response:
    metrics.REFUSED.labels(CHANNEL, str(status)).inc()
    log.warning("telegram webhook refused (%d): %s", status, reason)
    response = web.Response(status=status, text=reason)
    response.force_close()  # whatever body is left unread is not worth reading
    return response


# ---------------------------------------------------------------------- handlers


async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain what the bot knows and how to ask, with examples."""
    await _send(_message(update), _dialogue(context).help(), "", quote=False)


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer `/ask question` (in groups also `/ask@this_bot question`)."""
    await _answer(update, context, " ".join(context.args or ()))


async def on_private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Treat every text in a private chat as a question."""
    await _answer(update, context, _message(update).text or "")


async def on_group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a group message only when it mentions the bot or replies to it."""
    message = _message(update)
    question = addressed_text(message, context.bot.id, context.bot.username)
    if question is not None:
        await _answer(update, context, question)


async def on_admin(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Run /reload, /stats and /unanswered for configured admins."""
    message = _message(update)
    command = (message.text or "").split()[0].lstrip("/").split("@")[0].lower()
    inbound = _inbound(update, "")
    result = await _dialogue(context).admin(inbound, command, " ".join(context.args or ()))
    await _send(message, result, inbound.user, quote=inbound.group)


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle an option, related-question or feedback button."""
    query = update.callback_query
    if query is None or query.message is None:  # CallbackQueryHandler: both are there
        raise ValueError("the update carries no callback query with a message")
    message = query.message
    data = query.data or ""
    kind, _, rest = data.partition(":")
    inbound = Inbound(CHANNEL, str(message.chat.id), str(query.from_user.id), "",
                      message.chat.type != ChatType.PRIVATE)
    dialogue = _dialogue(context)
    if kind == "f":
        entry_id, _, vote = rest.rpartition(":")
        recorded = await dialogue.feedback(inbound, entry_id, vote == "1")
        await query.answer(say("zh", "thanks" if recorded else "question_expired"))
        return
    asker, _, option_id = rest.partition(":")
    if kind not in ("c", "o") or not option_id:
        await query.answer()
        return
    if asker != inbound.user:
        # In groups only the asker's press counts.
        await query.answer(say("zh", "not_yours"), show_alert=True)
        return
    reply = await dialogue.choose(inbound, option_id)
    if reply is None:
        await query.answer(say("zh", "question_expired"), show_alert=True)
        return
    await query.answer()
    if not isinstance(message, Message):  # too old for the bot to read or answer
        raise ValueError("the pressed button's message is no longer accessible")
    if kind == "c":
        # Show the choice on the question itself, and take its buttons away.
        label = _button_label(message, data) or option_id
        await query.edit_message_text(f"{message.text_html}\n\n✅ {html.escape(label)}",
                                      parse_mode=ParseMode.HTML, reply_markup=None)
    await _send(message, reply, inbound.user, quote=inbound.group)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a handler's exception; the application keeps serving."""
    metrics.ERRORS.labels("telegram").inc()
    log.error("telegram update failed", exc_info=context.error)


def _polling_error(error: TelegramError) -> None:
    log.warning("telegram polling error (retrying): %s", error)


# ---------------------------------------------------------------------- helpers


def addressed_text(message: Message, bot_id: int, username: str | None) -> str | None:
    """Return the question in a group message addressed to the bot, else None.

    Addressed means: it @mentions the bot, or it replies to one of the bot's messages. The
    mention is cut out of the question.
    """
    text = message.text or ""
    mentions = [
        entity for entity, value in message.parse_entities(
            [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items()
        if (entity.type == MessageEntity.MENTION and username
            and value.lower() == f"@{username.lower()}")
        or (entity.type == MessageEntity.TEXT_MENTION and entity.user
            and entity.user.id == bot_id)
    ]
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot_id)
    if not mentions and not to_bot:
        return None
    for entity, value in message.parse_entities([MessageEntity.MENTION,
                                                 MessageEntity.TEXT_MENTION]).items():
        if entity in mentions:
            text = text.replace(value, " ", 1)
    return " ".join(text.split())


def keyboard(reply: Reply, asker: str) -> InlineKeyboardMarkup | None:
    """Build the buttons for a reply: options, related questions and 👍/👎."""
    prefix = "c" if reply.kind == "clarify" else "o"
    rows = []
    for i, option in enumerate(reply.options, 1):
        data = f"{prefix}:{asker}:{option.id}"
        if len(data.encode()) > MAX_CALLBACK:
            log.warning("option %s does not fit in callback data; typed picks still work",
                        option.id)
            continue
        rows.append([InlineKeyboardButton(f"{i}. {option.label}", callback_data=data)])
    if reply.kind == "answer" and reply.entry is not None:
        rows.append([InlineKeyboardButton(say(reply.lang, "useful"),
                                          callback_data=f"f:{reply.entry.id}:1"),
                     InlineKeyboardButton(say(reply.lang, "not_useful"),
                                          callback_data=f"f:{reply.entry.id}:0")])
    return InlineKeyboardMarkup(rows) if rows else None


async def _answer(update: Update, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
    inbound = _inbound(update, question)
    result = await _dialogue(context).ask(inbound)
    await _send(_message(update), result, inbound.user, quote=inbound.group)


async def _send(message: Message, reply: Reply, asker: str, quote: bool) -> None:
    """Send a reply as HTML, split under Telegram's length limit."""
    text, markup = render(reply, "html"), keyboard(reply, asker)
    parts = split_message(text, MAX_TEXT)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        await _with_retries(lambda: message.reply_html(
            part, reply_markup=markup if last else None, do_quote=quote and i == 0,  # noqa: B023
            disable_web_page_preview=True))


async def _with_retries(send: Callable[[], Awaitable[object]], attempts: int = 4) -> None:
    """Send, retrying network failures and 5xx answers (429s are the rate limiter's job).

    A message the server never accepted is safe to resend. One whose answer was lost after
    delivery may arrive twice: the Bot API has no idempotency key to prevent that.
    """
    for attempt in range(1, attempts + 1):
        try:
            await send()
            return
        except (NetworkError, TimedOut) as exc:
            if isinstance(exc, BadRequest) or attempt == attempts:
                raise
            log.warning("telegram send failed (attempt %d of %d): %s", attempt, attempts, exc)
            await asyncio.sleep(0.5 * 2 ** (attempt - 1))


def _message(update: Update) -> Message:
    """Return the update's message; the message and command handlers only get such updates."""
    message = update.effective_message
    if message is None:
        raise ValueError("the update carries no message")
    return message


def _inbound(update: Update, text: str) -> Inbound:
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        raise ValueError("the update carries no chat or no sender")
    return Inbound(CHANNEL, str(chat.id), str(user.id), text, chat.type != ChatType.PRIVATE)


def _dialogue(context: ContextTypes.DEFAULT_TYPE) -> FrontDesk:
    desk: FrontDesk = context.application.bot_data["dialogue"]
    return desk


def _button_label(message: Message, data: str) -> str | None:
    markup = message.reply_markup
    for row in markup.inline_keyboard if markup else ():
        for button in row:
            if button.callback_data == data:
                return button.text.split(". ", 1)[-1]
    return None


async def _register_commands(application: Application) -> None:
    """Publish the command menu: public commands for all, admin ones in admins' chats."""
    bot = application.bot
    try:
        await bot.set_my_commands(PUBLIC_COMMANDS, scope=BotCommandScopeDefault())
    except TelegramError as exc:
        log.warning("command menu not set (the bot works without it): %s", exc)
    dialogue: FrontDesk = application.bot_data["dialogue"]
    for admin in sorted(dialogue.admins):
        try:
            await bot.set_my_commands(PUBLIC_COMMANDS + ADMIN_MENU,
                                      scope=BotCommandScopeChat(int(admin)))
        except (TelegramError, ValueError) as exc:
            # An admin who never opened a chat with the bot has no chat to scope to yet.
            log.warning("admin command menu not set for one admin: %s", exc)
