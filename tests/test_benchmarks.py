"""The channel benchmarks' own machinery, at a tiny scale: what they count must be true.

Figures are never asserted here (that is for `make bench`); what is asserted is that the load
drivers reach the served bot, pair every question with its answer, and would see a loss.
"""

import asyncio
from pathlib import Path

import pytest

from benchmarks import channels


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench-template")
    channels.prepare(path)
    return path


def test_paced_telegram_load_with_a_reload_answers_every_question_once(template: Path) -> None:
    result = channels.telegram_paced(template, chats=6, messages=3, think=(0.05, 0.2),
                                     reload_midway=True)
    assert result["updates"] == 18
    assert result["unanswered"] == 0 and result["answered_twice"] == 0
    assert result["reload_changed"] is True  # the admin's edit was reported by /reload
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert result["serve_peak_rss_mb"] > 50  # read from the served process, not this one


def test_telegram_burst_counts_every_update(template: Path) -> None:
    result = channels.telegram_burst(template, chats=5, messages=2)
    assert (result["updates"], result["unanswered"], result["answered_twice"]) == (10, 0, 0)


def test_wecom_load_answers_each_callback_once_and_ignores_the_retries(template: Path) -> None:
    result = asyncio.run(channels._wecom(template, requests=30, concurrency=8, unique=True))
    assert result["distinct_texts"] == 30
    assert result["unanswered"] == 0 and result["answered_twice"] == 0


def test_the_wecom_generator_stops_at_its_time_limit(template: Path) -> None:
    result = asyncio.run(channels._wecom(template, requests=5000, concurrency=4, unique=True,
                                         time_limit=1.0))
    assert 0 < result["requests"] < 5000  # bounded by time, not by count
    assert result["unanswered"] == 0 and result["answered_twice"] == 0


def test_the_bookkeeping_sees_lost_and_doubled_answers() -> None:
    book = channels._Chats(range(2))
    book.queued = {0: [0.0, 1.0], 1: [0.0, 1.0]}
    book.answered = {0: [0.1], 1: [0.2, 1.3, 1.4]}
    result = book.report(messages=2, elapsed=2.0)
    assert result["unanswered"] == 1 and result["answered_twice"] == 1
    assert result["replies_per_s"] == 1.5  # a doubled answer is not throughput
