"""Prometheus metrics: what operators watch. One registry, exposed at GET /metrics."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry()
REPLIES = Counter("bot_replies_total", "Replies by kind (answer, clarify, fallback, notice) "
                  "and channel", ["kind", "channel"], registry=REGISTRY)
REPLY_SECONDS = Histogram("bot_reply_seconds", "Seconds from a message to its reply",
                          ["channel"], registry=REGISTRY,
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RELOADS = Counter("bot_reloads_total", "Knowledge reloads by outcome (ok, invalid, failed)",
                  ["outcome"], registry=REGISTRY)
INDEX_ENTRIES = Gauge("bot_index_entries", "Entries in the index that serves",
                      registry=REGISTRY)
ERRORS = Counter("bot_errors_total", "Unexpected errors by where they happened", ["where"],
                 registry=REGISTRY)
REFUSED = Counter("bot_refused_requests_total", "Callbacks refused before the dialogue, by "
                  "channel and HTTP status", ["channel", "status"], registry=REGISTRY)


def track_index_size(entries: Callable[[], int]) -> None:
    """Report the live index size on every scrape."""
    INDEX_ENTRIES.set_function(entries)


def exposition() -> tuple[bytes, str]:
    """Return the metrics in the Prometheus text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
STORE_DEGRADED = Gauge("bot_store_degraded", "1 while the shared store is unreachable and the "
                       "bot answers from memory", registry=REGISTRY)
