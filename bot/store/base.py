"""What the bot keeps, and the narrow ports through which each part reaches it.

Each consumer names only the port it needs: the engine a ConversationStore and a Journal, the
admin commands Stats, the channels Dedup, replicas a ReloadBus. SQLite (one process) and Redis
(replicas) implement them all; ResilientStore keeps answering in memory when either fails.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from bot.dialogue.replies import Option


@dataclass
class Pending:
    """A clarifying question (or offered suggestions) waiting for the user's pick."""

    kind: str  # "concept", "candidates" or "suggest"
    question: str  # the user's message that led to it
    options: list[Option]
    concept: str | None = None
    asked_at: float = 0.0


@dataclass
class Conversation:
    """What the bot remembers of one (channel, chat, user) conversation."""

    pending: Pending | None = None
    history: list[str] = field(default_factory=list)  # recent normalised user messages
    shown: list[str] = field(default_factory=list)  # entries answered lately (for feedback)
    last_question: str = ""  # the last question answered, for an elliptical follow-up
    last_sense: str = ""  # "concept.sense" the user picked last, for "那另一种呢"

    def to_json(self) -> str:
        """Serialise for storage."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Conversation:
        """Restore from to_json output."""
        data = json.loads(raw)
        pending: Any = data.get("pending")
        if pending:
            pending["options"] = [Option(**o) for o in pending["options"]]
            pending = Pending(**pending)
        return cls(pending=pending, history=list(data.get("history", [])),
                   shown=list(data.get("shown", [])),
                   last_question=str(data.get("last_question", "")),
                   last_sense=str(data.get("last_sense", "")))


@dataclass(frozen=True)
class Unanswered:
    """A question the knowledge base could not answer."""

    at: float
    channel: str
    chat: str
    user: str
    text: str


class ConversationStore(Protocol):
    """Per-conversation state, read and written whole under a lock."""

    def load_conversation(self, key: str, now: float) -> Conversation: ...

    def save_conversation(self, key: str, conversation: Conversation, expires: float) -> None: ...

    def conversation_lock(self, key: str) -> AbstractContextManager[object]: ...


class Journal(Protocol):
    """What happened: replies, unanswered questions, feedback."""

    def log_reply(self, at: float, channel: str, kind: str, entry_id: str | None,
                  score: float) -> None: ...

    def log_unanswered(self, item: Unanswered) -> None: ...

    def record_feedback(self, at: float, channel: str, user: str, entry_id: str,
                        useful: bool) -> bool: ...


class Stats(Protocol):
    """Counts over the journal, for /stats and the console."""

    def latest_unanswered(self, limit: int) -> list[Unanswered]: ...

    def reply_counts(self, since: float) -> dict[str, int]: ...

    def feedback_counts(self, since: float) -> tuple[int, int]: ...

    def top_unanswered(self, since: float, limit: int) -> list[tuple[str, int]]: ...


class Dedup(Protocol):
    """Platform message ids already handled (platforms retry deliveries they think lost)."""

    def first_sighting(self, key: str, now: float, ttl: float) -> bool: ...


class DialogueStore(ConversationStore, Journal, Protocol):
    """What the dialogue engine needs."""


class Store(DialogueStore, Stats, Dedup, Protocol):
    """Everything one backend provides."""

    def close(self) -> None: ...
