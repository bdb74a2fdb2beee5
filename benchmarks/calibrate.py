"""Sweep the answer threshold and margin over tests/eval/calibration.yaml and print outcomes.

Each message goes through the real engine in a fresh conversation; a row is one
(answer threshold, margin, decisive gap) triple: correct outcomes (right entry, or clarify, or
fallback, as labelled), fallback precision and recall. The defaults in bot/config.py are the
row with the most correct outcomes; among equals, the one with the higher fallback precision
(never telling a seller "not covered" when an entry answers them), then the smaller margin.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml

from bot.cli import make_service
from bot.config import Settings, Thresholds
from bot.engine import ConversationKey, Engine
from bot.storage import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent


def outcome(engine: Engine, i: int, question: str) -> str:
    """Return the entry id answered, or clarify / fallback."""
    reply = engine.reply(ConversationKey("calibrate", "c", str(i)), question)
    return reply.entry_id if reply.kind == "answer" else reply.kind


def main() -> None:
    """Print the sweep table."""
    cases = yaml.safe_load((ROOT / "tests/eval/calibration.yaml").read_text(encoding="utf-8"))
    base = Settings.from_env()
    data = Path(tempfile.mkdtemp(prefix="calibrate-"))
    service = make_service(replace(base, data_dir=data))
    service.start()
    print("answer | margin | decisive | correct | fallback_precision | fallback_recall")
    grid = itertools.product((0.35, 0.38, 0.40, 0.42, 0.45), (0.0, 0.04, 0.06),
                             (0.2, 0.25, 0.3, 1.0))
    for answer, margin, decisive in grid:
        thresholds = Thresholds(answer=answer, margin=margin, decisive=decisive)
        settings = replace(base, thresholds=thresholds)
        engine = Engine(service, SQLiteStore(":memory:"), settings)
        got = [outcome(engine, i, c["q"]) for i, c in enumerate(cases)]
        want = [c["expect"] for c in cases]
        correct = sum(g == w for g, w in zip(got, want, strict=True))
        said_fb = [w for g, w in zip(got, want, strict=True) if g == "fallback"]
        should_fb = [g for g, w in zip(got, want, strict=True) if w == "fallback"]
        precision = said_fb.count("fallback") / len(said_fb) if said_fb else 1.0
        recall = should_fb.count("fallback") / len(should_fb) if should_fb else 1.0
        print(f"{answer:.2f} | {margin:.2f} | {decisive:.2f} | {correct}/{len(cases)} | "
              f"{precision:.2f} | "
              f"{recall:.2f}")


if __name__ == "__main__":
    main()
