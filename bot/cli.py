"""Command line: ask, chat, index build, kb check, run and serve.

With --json, stdout carries exactly one JSON line per reply and nothing else; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr, ValidationError

from bot import settings as environment
from bot.channels.render import render
from bot.channels.telegram import TelegramConfig
from bot.channels.wecom.server import WeComConfig
from bot.dialogue.engine import ConversationKey, Engine
from bot.dialogue.replies import Reply
from bot.kb.loader import KnowledgeBase, KnowledgeError, check_knowledge
from bot.kb.service import KnowledgeService, documents
from bot.ops import logsafe
from bot.settings import Environment, Settings
from bot.store.sqlite import STORE_ERRORS, ResilientStore, SQLiteStore, Store
from index.encoders import make_encoder
from index.search import open_index

log = logging.getLogger("bot")

CONSOLE = ConversationKey("cli", "console", "local")
DEV_SET = Path(__file__).resolve().parent.parent / "tests" / "eval" / "dev.yaml"


@dataclass
class App:
    """The assembled bot: settings, live knowledge, store and engine."""

    settings: Settings
    service: KnowledgeService
    store: ResilientStore
    engine: Engine


def make_service(settings: Settings) -> KnowledgeService:
    """Build the knowledge service with the configured encoder (nothing loaded yet)."""
    encoder = make_encoder(settings.encoder, settings.encoder_model)
    return KnowledgeService(settings.knowledge_dir, settings.data_dir, encoder, settings.weights)


def open_app(settings: Settings) -> App:
    """Load the encoder and knowledge (or the last good build) and open the store."""
    service = make_service(settings)
    service.start()
    retention = settings.retention_days * 86400
    try:
        if settings.redis_url:
            from bot.store.redis import RedisStore

            primary: Store = RedisStore(settings.redis_url, retention)
        else:
            primary = SQLiteStore(settings.data_dir / "bot.sqlite", retention)
        store = ResilientStore(primary, retention)
    except STORE_ERRORS as exc:
        store = ResilientStore(SQLiteStore(":memory:", retention), retention)
        store.degrade(exc)
    return App(settings, service, store, Engine(service, store, settings))


def reply_json(reply: Reply) -> str:
    """Serialise a reply as the one-line JSON contract."""
    return json.dumps({
        "kind": reply.kind,
        "text": render(reply, "text"),
        "entry_id": reply.entry_id,
        "options": [{"id": o.id, "label": o.label} for o in reply.options],
        "score": round(float(reply.score), 4),
    }, ensure_ascii=False)


def _emit(reply: Reply, as_json: bool) -> None:
    print(reply_json(reply) if as_json else render(reply, "text"), flush=True)


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    """Answer one message."""
    app = open_app(settings)
    _emit(app.engine.reply(CONSOLE, " ".join(args.text)), args.json)
    return 0


def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    """Reply to each line of stdin; a REPL with history when stdin is a terminal."""
    app = open_app(settings)
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401 - importing it gives input() line editing and history

        print("小红书政策问答（输入问题，Ctrl-D 退出）", file=sys.stderr)
    while True:
        try:
            line = input("你> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive and line == "":
            break
        _emit(app.engine.reply(CONSOLE, line.rstrip("\n")), args.json)
        if interactive:
            print()
    return 0


def cmd_index_build(settings: Settings, args: argparse.Namespace) -> int:
    """Validate the knowledge and build (or reuse) the index."""
    service = make_service(settings)
    try:
        report = service.reload(force=args.force)
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("index not built: fix the errors above (the previous build keeps serving)",
              file=sys.stderr)
        return 1
    print(f"index ready: {report.entries} entries, {report.embedded} texts embedded, "
          f"{report.seconds:.2f}s ({settings.encoder})")
    return 0


def cmd_kb_check(settings: Settings, args: argparse.Namespace) -> int:
    """Print every problem in the knowledge files; exit 1 if any is an error."""
    kb, problems = check_knowledge(settings.knowledge_dir)
    for problem in problems:
        print(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    if kb is None:
        print(f"{errors} errors", file=sys.stderr)
        return 1 if errors else 0
    if args.confusable > 0:
        _print_confusable(kb, settings, args.confusable)
    print(f"ok: {len(kb.entries)} entries, {len(kb.concepts)} concepts, "
          f"{len(kb.aliases)} aliases, {len(problems)} warnings", file=sys.stderr)
    return 0


def _print_confusable(kb: KnowledgeBase, settings: Settings, min_score: float) -> None:
    """List entry pairs whose questions the encoder can hardly tell apart."""
    encoder = make_encoder(settings.encoder, settings.encoder_model)
    # Built in memory: a check must not change which build the bot serves.
    index, _ = open_index(documents(kb), kb.normalizer(), encoder, None, settings.weights)
    pairs = index.confusable(min_score)
    print(f"confusable entry pairs (questions at least {min_score:.2f} alike; sharpen the "
          "questions, add cue words, or link the entries with related): "
          f"{len(pairs) or 'none'}")
    for pair in pairs:
        linked = (pair.key_b in kb.entries[pair.key_a].related
                  or pair.key_a in kb.entries[pair.key_b].related)
        print(f"  {pair.score:.2f}  {pair.key_a} ~ {pair.key_b}{'  (related)' if linked else ''}"
              f"\n        「{pair.question_a}」 ≈ 「{pair.question_b}」")


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Score the bot and the baselines on the development set, or sweep the thresholds."""
    from bot import evaluation

    # Sweeps ask the same questions many times: the index's query cache encodes each once.
    service = make_service(settings)
    service.start()
    cases = evaluation.load_cases(args.cases)
    problems = evaluation.check_cases(cases, service.current.kb)
    for problem in problems:
        print(f"{args.cases}: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.sweep:
        rows = evaluation.sweep(service, settings, cases,
                                evaluation.default_grid(settings.thresholds))
        print("answer margin decisive | overall  clarify P/R  fallback P/R  (calibrate half)")
        for th, m in rows[:args.top]:
            print(f"{th.answer:.2f}   {th.margin:.2f}   {th.decisive:.2f}    | "
                  f"{m.overall:.3f}  {m.clarify_precision:.2f}/{m.clarify_recall:.2f}  "
                  f"{m.fallback_precision:.2f}/{m.fallback_recall:.2f}")
        return 0
    result = evaluation.evaluate(service, settings, cases, args.half)
    if args.json:
        print(json.dumps({"half": result.half, "systems": {
            name: asdict(m) for name, m in result.systems.items()}}, ensure_ascii=False))
    else:
        print(evaluation.format_report(result))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Validate every variable; list problems by name and what is set, never a secret."""
    try:
        env = Environment.load()
    except ValidationError as exc:
        for problem in environment.problems(exc):
            print(f"error: {problem}")
        return 1
    for name in Environment.model_fields:
        value = getattr(env, name)
        if isinstance(value, SecretStr):
            shown = "set (hidden)" if value.get_secret_value() else "empty"
        elif value is None or value == "":
            shown = "unset" if value is None else "empty"
        else:
            shown = str(value)
        marker = " " if name not in env.model_fields_set else "*"
        print(f"{marker} {name} = {shown}")
    channels = [name for name, config in zip(("telegram", "wecom"), configured_channels(),
                                             strict=True) if config is not None]
    print(f"ok: channels {', '.join(channels) or 'none (console chat only)'}; "
          "* marks variables set in the environment or .env")
    return 0


def configured_channels() -> tuple[TelegramConfig | None, WeComConfig | None]:
    """Return each channel's settings, or None where its credentials are absent."""
    return TelegramConfig.from_env(), WeComConfig.from_env()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the configured chat channels until interrupted."""
    telegram, wecom = configured_channels()
    if telegram is None and wecom is None:
        print("no channel configured: set TELEGRAM_BOT_TOKEN or the WECOM_* variables "
              "(see README); `python -m bot chat` talks to the bot in the terminal",
              file=sys.stderr)
        return 2
    app = open_app(settings)
    asyncio.run(_serve(app, telegram, wecom))
    return 0


async def _serve(app: App, telegram: TelegramConfig | None, wecom: WeComConfig | None) -> None:
    """Run the channels side by side in one event loop until SIGINT or SIGTERM."""
    from bot.channels import telegram as tg
    from bot.channels.frontdesk import Dialogue
    from bot.channels.wecom import server as wc
    from bot.ops import server as http
    from bot.store import redis as replicas

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    limiter = None
    runs = []
    shared = getattr(app.store, "primary", app.store)
    if isinstance(shared, replicas.RedisStore):
        limiter = replicas.RedisRateLimiter(shared, app.settings.user_rate_limit,
                                            app.settings.user_rate_window)
        runs.append(replicas.watch_reloads(shared, app.service, stop))

    def dialogue(admins: frozenset[str]) -> Dialogue:
        return Dialogue(app.engine, app.service, app.store, app.settings, admins,
                        limiter=limiter)

    if telegram is not None:
        application = tg.build_application(dialogue(app.settings.telegram_admins), telegram)
        runs.append(tg.run(application, telegram, stop))
    # The HTTP server always runs: /healthz and /metrics, and the WeCom callbacks if set.
    routes = [wc.WeComServer(dialogue(app.settings.wecom_admins), wecom)] if wecom else []
    env = Environment.load()
    runs.append(http.serve(http.application(*routes), env.HTTP_HOST, env.HTTP_PORT, stop))
    await asyncio.gather(*runs)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the channels when credentials are set, else open the console chat."""
    if any(configured_channels()):
        return cmd_serve(settings, args)
    args.json = False
    return cmd_chat(settings, args)


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer one message")
    ask.add_argument("--json", action="store_true", help="one JSON line on stdout")
    ask.add_argument("text", nargs="+")
    ask.set_defaults(func=cmd_ask)
    chat = sub.add_parser("chat", help="reply to each line of stdin")
    chat.add_argument("--json", action="store_true", help="one JSON line per reply")
    chat.set_defaults(func=cmd_chat)
    index = sub.add_parser("index", help="index commands").add_subparsers(dest="action",
                                                                          required=True)
    build = index.add_parser("build", help="validate the knowledge and build the index")
    build.add_argument("--force", action="store_true", help="rebuild even if a build matches")
    build.set_defaults(func=cmd_index_build)
    kb = sub.add_parser("kb", help="knowledge commands").add_subparsers(dest="action",
                                                                       required=True)
    check = kb.add_parser("check", help="validate the knowledge files")
    check.add_argument("--confusable", type=float, default=0.75, metavar="SCORE",
                       help="list entry pairs whose questions are this alike (0..1; 0: skip)")
    check.set_defaults(func=cmd_kb_check)
    ev = sub.add_parser("eval", help="score the bot and baselines on the development set")
    ev.add_argument("--half", default="report", choices=("calibrate", "report", "all"),
                    help="which half of the set to report (default: report)")
    ev.add_argument("--sweep", action="store_true",
                    help="sweep the thresholds on the calibrate half instead")
    ev.add_argument("--top", type=int, default=15, help="rows of the sweep to print")
    ev.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    ev.add_argument("--cases", type=Path, default=DEV_SET, help="the development set")
    ev.set_defaults(func=cmd_eval)
    config = sub.add_parser("config", help="configuration commands").add_subparsers(
        dest="action", required=True)
    config.add_parser("check", help="validate the environment and .env; secrets stay hidden"
                      ).set_defaults(func=cmd_config_check)
    sub.add_parser("serve", help="serve the configured chat channels").set_defaults(func=cmd_serve)
    sub.add_parser("run", help="serve, or chat in the console without credentials"
                   ).set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = build_parser().parse_args(argv)
    logsafe.configure(os.environ.get("BOT_LOG_LEVEL", "WARNING").upper())
    started = time.perf_counter()
    try:
        if args.func is cmd_config_check:
            return cmd_config_check(args)
        settings = Settings.from_env()
        return args.func(settings, args)
    except ValidationError as exc:
        # pydantic's own message would echo the offending values, secrets included.
        for problem in environment.problems(exc):
            print(f"configuration: {problem}", file=sys.stderr)
        print("run `python -m bot config check` for the whole picture", file=sys.stderr)
        return 2
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print("the knowledge has errors and there is no earlier build to serve", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        log.debug("command took %.3fs", time.perf_counter() - started)
