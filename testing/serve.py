"""Start and stop the real served bot (`python -m bot serve`) for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepts(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_serve(data: Path, **env: str) -> subprocess.Popen[str]:
    """Start `python -m bot serve` with only the given channel settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TELEGRAM_", "WECOM_", "HTTP_"))}
    return subprocess.Popen([sys.executable, "-m", "bot", "serve"],
                            env={**clean, "BOT_DATA_DIR": str(data), **env}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_serve(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Stop a served bot the way an operator does (SIGTERM); return its exit code and output."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return process.returncode, out + err


def eventually(check: Callable[[int], bool], what: str, timeout: float = 30.0) -> None:
    """Call check(attempt) every half second until it is true; fail naming what never came."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while not check(attempt):
        assert time.monotonic() < deadline, what
        attempt += 1
        time.sleep(0.5)
