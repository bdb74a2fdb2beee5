"""Regression floor on the calibration set: an edit that breaks answers fails the build."""

from pathlib import Path

import yaml

from bot.config import Settings
from bot.engine import ConversationKey, Engine
from bot.storage import SQLiteStore

CASES = yaml.safe_load((Path(__file__).parent / "eval/calibration.yaml").read_text("utf-8"))


def test_calibration_set_stays_above_its_floor(service, tmp_path: Path) -> None:
    engine = Engine(service, SQLiteStore(tmp_path / "s.sqlite"), Settings(data_dir=tmp_path))
    misses = []
    fallback_said = fallback_right = 0
    for i, case in enumerate(CASES):
        reply = engine.reply(ConversationKey("eval", "c", str(i)), case["q"])
        got = reply.entry_id if reply.kind == "answer" else reply.kind
        if got == "fallback":
            fallback_said += 1
            fallback_right += case["expect"] == "fallback"
        if got != case["expect"]:
            misses.append((case["q"], case["expect"], got))
    # Measured 51/54 with fallback precision 1.00 when the defaults were calibrated.
    assert len(CASES) - len(misses) >= 49, misses
    assert fallback_right / max(fallback_said, 1) >= 0.93, misses
