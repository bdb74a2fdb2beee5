"""Command line: ask, chat, index build, kb check, run and serve.

With --json, stdout carries exactly one JSON line per reply and nothing else; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import SecretStr, ValidationError

from bot import channels
from bot.app import App, make_service, open_app, serve
from bot.channels.frontdesk import help_text
from bot.channels.render import render
from bot.copy import counted, say
from bot.dialogue import answerability
from bot.dialogue.engine import ConversationKey
from bot.dialogue.replies import Reply, notice
from bot.kb.freshness import needing_review
from bot.kb.loader import KnowledgeBase, KnowledgeError, check_knowledge
from bot.kb.service import documents
from bot.ops import logsafe
from bot.ops.server import StartupError
from bot.settings import PROJECT_ROOT, Environment, Settings, problems
from index.encoders import make_encoder
from index.search import open_index

if TYPE_CHECKING:
    from bot.evaluation import Case, Evaluation

log = logging.getLogger("bot")

CONSOLE = ConversationKey("cli", "console", "local")
DEV_SET = PROJECT_ROOT / "tests" / "eval" / "dev.yaml"
# Batches that teach the judgement only; never reported.
TRAIN_SETS = [PROJECT_ROOT / "tests" / "eval" / name for name in ("train.yaml", "train2.yaml")]
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def cli_lang(explicit: str | None = None) -> str:
    """The language of maintainers' messages: --lang, else English under an English locale.

    Chinese is the default (the maintainers' guide is Chinese); LC_ALL, LC_MESSAGES or LANG
    starting with "en" (the first one set counts, as for any program) selects English.
    """
    if explicit:
        return explicit
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "en" if value.lower().startswith("en") else "zh"
    return "zh"


class IndexProgress:
    """Show how an index build goes on stderr: in place on a terminal, else a line a quarter."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.terminal = sys.stderr.isatty()
        self._quarter = -1

    def __call__(self, done: int, total: int) -> None:
        line = say(self.lang, "index_progress", done=done, total=total)
        if self.terminal:
            print("\r" + line, end="\n" if done >= total else "", file=sys.stderr, flush=True)
            return
        quarter = 4 * done // max(total, 1)
        if quarter != self._quarter:
            self._quarter = quarter
            print(line, file=sys.stderr, flush=True)


def reply_json(reply: Reply) -> str:
    """Serialise a reply as the one-line JSON contract."""
    return json.dumps({
        "kind": reply.kind,
        "text": render(reply, "text"),
        "entry_id": reply.entry_id,
        "options": [{"id": o.id, "label": o.label} for o in reply.options],
        "score": round(float(reply.score), 4),
    }, ensure_ascii=False)


def for_terminal(text: str, color: bool) -> str:
    """Render answer Markdown for a terminal: **bold** in bold where colours are shown."""
    return _BOLD.sub(r"\033[1m\1\033[0m" if color else r"\1", text)


def _emit(reply: Reply, as_json: bool, color: bool = False) -> None:
    print(reply_json(reply) if as_json else for_terminal(render(reply, "text"), color),
          flush=True)


def cmd_ask(env: Environment, args: argparse.Namespace) -> int:
    """Answer one message: no state from earlier calls is read, and none is left."""
    app = open_app(env, store_path=":memory:")
    _emit(app.engine.reply(CONSOLE, " ".join(args.text)), args.json)
    return 0


def cmd_chat(env: Environment, args: argparse.Namespace) -> int:
    """Reply to each line of stdin; a REPL with history when stdin is a terminal.

    The console keeps its conversations and statistics in console.sqlite, apart from the
    channels' own, so trying the bot never shows up in /stats or /unanswered.
    """
    interactive = sys.stdin.isatty()
    settings_ = Settings.from_environment(env)
    service = make_service(settings_)
    if interactive:
        print(say("zh", "loading"), file=sys.stderr, flush=True)
    # A first run embeds every question (half a minute or more): the progress shows it moving.
    problems = service.start(progress=IndexProgress("zh") if interactive else None)
    app = open_app(env, store_path=settings_.data_dir / "console.sqlite", service=service)
    # Each run is a conversation of its own: a sense picked in an earlier run settles nothing.
    session = CONSOLE._replace(user=f"session-{os.getpid()}-{int(time.time())}")
    if interactive:
        import readline  # noqa: F401 - importing it gives input() line editing and history

        for problem in problems[:5]:
            print(problem, file=sys.stderr)
        print(for_terminal(help_text(service), True) + "\n\n" + say("zh", "console_how_to"),
              file=sys.stderr)
    while True:
        try:
            line = input("你> ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print(file=sys.stderr)  # leave the shell prompt on a line of its own
            break
        if not interactive and line == "":
            break
        _emit(console_reply(app, line.rstrip("\n"), session), args.json,
              color=interactive and not os.environ.get("NO_COLOR"))
        if interactive:
            print()
    return 0


def console_reply(app: App, line: str, key: ConversationKey = CONSOLE) -> Reply:
    """Answer a console line: the console's own commands, else the dialogue."""
    command = line.strip().split(maxsplit=1)[0].lower() if line.strip().startswith("/") else ""
    if command in ("/help", "/start"):
        return notice(help_text(app.service))
    if command == "/reload":
        from bot.channels.admin import AdminConsole

        return notice(AdminConsole(app.service, app.store).reload())
    if command:
        return notice(say("zh", "console_unknown_command"))
    return app.engine.reply(key, line)


def cmd_index_build(env: Environment, args: argparse.Namespace) -> int:
    """Validate the knowledge and build (or reuse) the index."""
    settings = Settings.from_environment(env)
    service = make_service(settings)
    lang = cli_lang(args.lang)
    try:
        report = service.reload(force=args.force, progress=IndexProgress(lang))
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem.text(lang), file=sys.stderr)
        print(say(lang, "index_not_built"), file=sys.stderr)
        return 1
    print(say(lang, "index_ready", entries=counted(lang, "n_entries", report.entries),
              embedded=report.embedded, seconds=report.seconds, encoder=settings.encoder))
    return 0


def cmd_kb_check(env: Environment, args: argparse.Namespace) -> int:
    """Print every problem in the knowledge files; exit 1 if any is an error."""
    settings = Settings.from_environment(env)
    lang = cli_lang(args.lang)
    kb, problems = check_knowledge(settings.knowledge_dir)
    for problem in problems:
        print(problem.text(lang))
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = counted(lang, "n_warnings", len(problems) - errors)
    if kb is None:
        print(say(lang, "kb_failed", errors=counted(lang, "n_errors", errors),
                  warnings=warnings), file=sys.stderr)
        return 1 if errors else 0
    _print_review(kb, lang)
    if args.confusable > 0:
        _print_confusable(kb, settings, args.confusable, lang)
    print(say(lang, "kb_ok", entries=counted(lang, "n_entries", len(kb.entries)),
              concepts=counted(lang, "n_concepts", len(kb.concepts)),
              aliases=counted(lang, "n_aliases", len(kb.aliases)),
              gaps=counted(lang, "n_gaps", len(kb.gaps)), warnings=warnings),
          file=sys.stderr)
    return 0


def _print_review(kb: KnowledgeBase, lang: str) -> None:
    """List entries whose stated period has ended, or whose as-of date is over a year old."""
    today = dt.datetime.now(dt.UTC).date()
    found = needing_review(kb.entries.values(), today)
    print(say(lang, "stale_header", count=len(found)) if found else say(lang, "stale_none"))
    for entry, fresh in found:
        why = (say(lang, "stale_expired", valid_until=entry.valid_until) if fresh.expired
               else say(lang, "stale_old", as_of=entry.as_of))
        print(f"  {entry.path}:{entry.line}: {entry.id}: {why}")


def _print_confusable(kb: KnowledgeBase, settings: Settings, min_score: float,
                      lang: str) -> None:
    """List entry pairs whose questions the encoder can hardly tell apart."""
    encoder = make_encoder(settings.encoder, settings.encoder_model)
    normalise = kb.normalizer()
    # Built in a scratch folder: a check must not change which build the bot serves. It starts
    # from a copy of the bot's embedding cache, so only new or edited questions are embedded.
    with tempfile.TemporaryDirectory(prefix="kb-check-") as scratch:
        _copy_embeddings(settings.data_dir / "index" / "embeddings.sqlite",
                         Path(scratch) / "embeddings.sqlite")
        index, _ = open_index(documents(kb), normalise, encoder, Path(scratch),
                              settings.weights, progress=IndexProgress(lang))
    pairs = index.confusable(min_score)

    def written(key: str, normalised: str) -> str:
        """The question as its author wrote it (the index holds the normalised text)."""
        entry, gap = kb.entries.get(key), kb.gaps.get(key)
        texts = ((entry.title, *entry.questions, entry.title_en, *entry.questions_en) if entry
                 else (gap.topic, *gap.questions, gap.topic_en, *gap.questions_en) if gap
                 else ())
        return next((q for q in texts if q and normalise(q) == normalised), normalised)

    def links(key: str) -> tuple[str, ...]:
        """An entry's related entries, or the entries a known gap points to instead."""
        entry, gap = kb.entries.get(key), kb.gaps.get(key)
        return entry.related if entry else gap.see if gap else ()

    # A known gap close to an entry is listed too: it may take that entry's questions.
    print(say(lang, "kb_confusable", score=min_score,
              count=len(pairs) or say(lang, "kb_confusable_none")))
    for pair in pairs:
        linked = pair.key_b in links(pair.key_a) or pair.key_a in links(pair.key_b)
        tag = f"  {say(lang, 'kb_linked')}" if linked else ""
        print(f"  {pair.score:.2f}  {pair.key_a} ~ {pair.key_b}{tag}\n"
              f"        「{written(pair.key_a, pair.question_a)}」 ≈ "
              f"「{written(pair.key_b, pair.question_b)}」")


def _copy_embeddings(cache: Path, target: Path) -> None:
    """Copy an embedding cache consistently (SQLite's backup), even while the bot writes it."""
    if not cache.is_file():
        return
    try:
        source = sqlite3.connect(f"{cache.resolve().as_uri()}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
    except sqlite3.Error as exc:  # unreadable: the check embeds everything itself
        log.warning("embedding cache %s not used (%s)", cache, exc)
        target.unlink(missing_ok=True)


def _load_batches(paths: Sequence[Path], kb: KnowledgeBase) -> list[Case] | None:
    """Read labelled batches (every case counts); None after printing what is wrong."""
    from bot import evaluation

    cases: list[Case] = []
    wrong = False
    for path in paths:
        try:
            batch = evaluation.load_cases(path, training=True)
        except (OSError, ValueError, KeyError, yaml.YAMLError) as exc:
            print(f"{path}: cannot read it: {exc}", file=sys.stderr)
            wrong = True
            continue
        for problem in evaluation.check_cases(batch, kb, minimums={}):
            print(f"{path}: {problem}", file=sys.stderr)
            wrong = True
        cases += batch
    return None if wrong else cases


def cmd_eval(env: Environment, args: argparse.Namespace) -> int:
    """Score the bot and the baselines on the development set, or a batch, or sweep the
    thresholds, or train the answerability judgement."""
    from bot import evaluation

    settings = Settings.from_environment(env)
    if args.batch:
        service = make_service(settings)
        service.start()
        batch = _load_batches(args.batch, service.current.kb)
        if batch is None:
            return 1
        _print_evaluation(evaluation.evaluate_batch(service, settings, batch), args.json)
        return 0
    if not Path(args.cases).is_file():
        print(f"{args.cases}: the development set is not here (it lives in the source tree, "
              "tests/eval/); pass --cases FILE", file=sys.stderr)
        return 2
    # Sweeps ask the same questions many times: the index's query cache encodes each once.
    service = make_service(settings)
    service.start()
    cases = evaluation.load_cases(args.cases)
    problems = evaluation.check_cases(cases, service.current.kb)
    for problem in problems:
        print(f"{args.cases}: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.train:
        extra = _load_batches([p for p in args.train_cases if p.is_file()],
                              service.current.kb)
        if extra is None:
            return 1
        model, confusion, n = evaluation.train_answerability(service, settings, cases, extra)
        model.save()
        tp, fp, tn, fn = (confusion[k] for k in ("tp", "fp", "tn", "fn"))
        print(f"answerability: trained on {n} decisions (the calibration half and "
              f"{len(extra)} training cases); threshold {model.threshold:.2f}, chosen on the "
              f"calibration half; saved to {answerability.WEIGHTS.name}")
        print("5-fold cross-validation on those decisions:")
        print("                 entry answers   entry does not")
        print(f"  answered       {tp:>13}   {fp:>14}")
        print(f"  fell back      {fn:>13}   {tn:>14}")
        print(f"  precision {tp / max(tp + fp, 1):.3f}  recall {tp / max(tp + fn, 1):.3f}  "
              f"accuracy {(tp + tn) / max(n, 1):.3f}")
        print("weights: " + ", ".join(f"{f} {w:+.2f}" for f, w in
                                      zip(answerability.FEATURES, model.weights, strict=True)))
        return 0
    if args.sweep:
        rows = evaluation.sweep(service, settings, cases,
                                evaluation.default_grid(settings.thresholds))
        print("answer margin decisive | overall  clarify P/R  fallback P/R  (calibrate half)")
        for th, m in rows[:args.top]:
            print(f"{th.answer:.2f}   {th.margin:.2f}   {th.decisive:.2f}    | "
                  f"{m.overall:.3f}  {m.clarify_precision:.2f}/{m.clarify_recall:.2f}  "
                  f"{m.fallback_precision:.2f}/{m.fallback_recall:.2f}")
        return 0
    _print_evaluation(evaluation.evaluate(service, settings, cases, args.half), args.json)
    return 0


def _print_evaluation(result: Evaluation, as_json: bool) -> None:
    """Print an evaluation as tables, or as one JSON line."""
    from bot import evaluation

    if as_json:
        print(json.dumps({"half": result.half, "systems": {
            name: asdict(m) for name, m in result.systems.items()}}, ensure_ascii=False))
    else:
        print(evaluation.format_report(result))


def cmd_config_check(env: Environment, args: argparse.Namespace) -> int:
    """List every variable with the value in force (secrets hidden) and what serves."""
    derived = Settings.from_environment(env)
    for name in Environment.model_fields:
        value = getattr(env, name)
        if isinstance(value, SecretStr):
            shown = "set (hidden)" if value.get_secret_value() else "empty"
        elif value is None and name.startswith(("BOT_THRESHOLD_", "BOT_WEIGHT_")):
            # Unset thresholds and weights mean the calibrated defaults: show those.
            group = derived.thresholds if "THRESHOLD" in name else derived.weights
            field = name.split("_", 2)[2].lower()
            shown = f"{getattr(group, field)} (default)"
        elif value is None or value == "":
            shown = "unset" if value is None else "empty"
        else:
            shown = str(value)
        marker = "*" if name in env.model_fields_set else " "
        print(f"{marker} {name} = {shown}")
    names = [c.name for c in channels.configured(env)]
    print(f"ok: channels {', '.join(names) or 'none (console chat only)'}; "
          "* marks variables set in the environment or .env")
    return 0


def cmd_serve(env: Environment, args: argparse.Namespace) -> int:
    """Serve the configured chat channels until interrupted."""
    configured = channels.configured(env)
    # The knowledge console alone is worth serving: maintainers prepare knowledge before a
    # chat channel is connected.
    if not configured and not env.BOT_CONSOLE_USERS.strip():
        print("no channel configured: set TELEGRAM_BOT_TOKEN or the WECOM_* variables "
              "(see README), or BOT_CONSOLE_USERS for the knowledge console alone; "
              "`python -m bot chat` talks to the bot in the terminal", file=sys.stderr)
        return 2
    asyncio.run(serve(open_app(env), configured))
    return 0


def cmd_run(env: Environment, args: argparse.Namespace) -> int:
    """Serve the channels when credentials are set, else open the console chat."""
    if channels.configured(env):
        return cmd_serve(env, args)
    args.json = False
    return cmd_chat(env, args)


def cmd_console_hash(env: Environment, args: argparse.Namespace) -> int:
    """Print a password hash for BOT_CONSOLE_USERS (the password is read, never echoed)."""
    from bot.console.auth import hash_password, parse_users

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("use at least 8 characters", file=sys.stderr)
        return 1
    encoded = hash_password(password, args.iterations)
    if args.name:
        parse_users(f"{args.name}:{encoded}")  # a name the setting would refuse: say so now
    print(f"{args.name}:{encoded}" if args.name else encoded)
    return 0


def _add_lang(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=("zh", "en"),
                        help="language of the messages: zh (the default) or en; an English "
                        "locale (LANG=en_US.UTF-8) also selects English")


def build_parser() -> argparse.ArgumentParser:
    """Describe the command line."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer one message",
                         description="Answer one message and exit; nothing is remembered.")
    ask.add_argument("--json", action="store_true", help="one JSON line on stdout")
    ask.add_argument("text", nargs="+", help="the message (several words are joined)")
    ask.set_defaults(func=cmd_ask)
    chat = sub.add_parser("chat", help="reply to each line of stdin",
                          description="Reply to each line of stdin (a REPL on a terminal; "
                          "/help, /reload). Conversations last for the session.")
    chat.add_argument("--json", action="store_true", help="one JSON line per reply")
    chat.set_defaults(func=cmd_chat)
    index = sub.add_parser("index", help="index commands").add_subparsers(dest="action",
                                                                          required=True)
    build = index.add_parser("build", help="validate the knowledge and build the index",
                             description="Validate the knowledge and build the index, or "
                             "reuse the build that matches it.")
    build.add_argument("--force", action="store_true", help="rebuild even if a build matches")
    _add_lang(build)
    build.set_defaults(func=cmd_index_build)
    kb = sub.add_parser("kb", help="knowledge commands").add_subparsers(dest="action",
                                                                       required=True)
    check = kb.add_parser("check", help="validate the knowledge files")
    check.add_argument("--confusable", type=float, default=0.75, metavar="SCORE",
                       help="list entry pairs whose questions are this alike (0..1; 0: skip; "
                       "default 0.75)")
    _add_lang(check)
    check.set_defaults(func=cmd_kb_check)
    ev = sub.add_parser("eval", help="score the bot and baselines on the development set")
    ev.add_argument("--half", default="report", choices=("calibrate", "report", "all"),
                    help="which half of the set to report (default: report)")
    ev.add_argument("--sweep", action="store_true",
                    help="sweep the thresholds on the calibrate half instead")
    ev.add_argument("--top", type=int, default=15, help="rows of the sweep to print")
    ev.add_argument("--train", action="store_true",
                    help="train the answerability judgement on the calibrate half and the "
                    "training batch, and save it")
    ev.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    ev.add_argument("--cases", type=Path, default=DEV_SET, help="the development set")
    ev.add_argument("--train-cases", type=Path, nargs="*", default=TRAIN_SETS,
                    help="the training batches --train also learns from (those that exist)")
    ev.add_argument("--batch", type=Path, nargs="+", metavar="FILE",
                    help="score the bot alone on every case of these labelled batches "
                    "(same sections as the development set)")
    ev.set_defaults(func=cmd_eval)
    config = sub.add_parser("config", help="configuration commands").add_subparsers(
        dest="action", required=True)
    config.add_parser("check", help="validate the environment and .env; secrets stay hidden"
                      ).set_defaults(func=cmd_config_check)
    console = sub.add_parser("console", help="knowledge console commands").add_subparsers(
        dest="action", required=True)
    hashing = console.add_parser(
        "hash-password", help="make a password hash for BOT_CONSOLE_USERS",
        description="Read a password (twice on a terminal, else one line of stdin) and print "
        "its hash; with --name, the whole name:hash entry for BOT_CONSOLE_USERS.")
    hashing.add_argument("--name", default="", help="the console user's name")
    hashing.add_argument("--iterations", type=int, default=600_000, help=argparse.SUPPRESS)
    hashing.set_defaults(func=cmd_console_hash)
    serving = ("Reads TELEGRAM_BOT_TOKEN (and TELEGRAM_WEBHOOK_*), WECOM_BOT_* / WECOM_APP_*, "
               "HTTP_HOST (default 127.0.0.1), HTTP_PORT (8080), REDIS_URL, BOT_DATA_DIR, "
               "BOT_KNOWLEDGE_DIR, BOT_ADMIN_*_IDS and BOT_LOG_LEVEL from the environment or "
               ".env; `python -m bot config check` lists them all.")
    sub.add_parser("serve", help="serve the configured chat channels", description=serving
                   ).set_defaults(func=cmd_serve)
    sub.add_parser("run", help="serve, or chat in the console without credentials",
                   description="Serve the configured channels; with none configured, open "
                   "the console chat. " + serving).set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line: load the configuration once and hand it to the command."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        env = Environment.load()
    except ValidationError as exc:
        logsafe.configure("WARNING")
        if args.func is cmd_config_check:  # the checker's report is its output
            for problem in problems(exc):
                print(f"error: {problem}")
            return 1
        # pydantic's own message would echo the offending values, secrets included.
        for problem in problems(exc):
            print(f"configuration: {problem}", file=sys.stderr)
        print("run `python -m bot config check` after fixing it", file=sys.stderr)
        return 2
    logsafe.configure(env.BOT_LOG_LEVEL, env.secrets(), env.LOG_FORMAT == "json")
    try:
        code: int = args.func(env, args)
        return code
    except StartupError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except KnowledgeError as exc:
        lang = cli_lang(getattr(args, "lang", None))
        for knowledge_problem in exc.problems:
            print(knowledge_problem.text(lang), file=sys.stderr)
        print(say(lang, "kb_no_build"), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        log.debug("command took %.3fs", time.perf_counter() - started)
