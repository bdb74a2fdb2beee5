"""The channel benchmarks' own machinery, at a tiny scale: what they count must be true.

Figures are never asserted here (that is for `make bench`); what is asserted is that the load
drivers reach the served bot, pair every question with its answer, and would see a loss.
"""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from benchmarks import channels, faults


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


# ---------------------------------------------------------------------- faults (issue 13)


def test_the_fault_bookkeeping_sees_lost_failed_and_doubled_answers() -> None:
    traffic = faults.Traffic([], rate=1.0)
    traffic.deliveries = [
        faults.Delivery("a", 0, "down", 0.1, "s1"),
        faults.Delivery("a", 1, "down", 0.2, "s2", retry=True),  # a second answer: doubled
        faults.Delivery("b", 0, "down", 0.1, None),  # an empty reply and nothing else: lost
        faults.Delivery("c", 0, "frozen", 3.0, "s3", "抱歉，处理这个问题时出错了，请稍后再问。"),
        faults.Delivery("d", 1, "after", 0.1, "s4"),
        faults.Delivery("d", 0, "after", 0.1, None, retry=True),  # a retry recognised: fine
    ]
    result = faults._tally(traffic)
    assert (result["answered"], result["lost"], result["failed"], result["doubled"]) == \
        (2, 1, 1, 1)
    assert result["max_frozen_ms"] == 3000 and result["messages"] == 4


def test_the_stored_conversations_driver_fills_the_store_and_answers_every_callback(
        template: Path, tmp_path: Path) -> None:
    faults.store_conversations(tmp_path, 300)
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM conversations WHERE expires > ?",
                          (time.time(),)).fetchone()[0] == 300
    result = faults.wecom_stored(template, 300, requests=30, concurrency=8)
    assert (result["stored"], result["requests"], result["unanswered"]) == (300, 30, 0)


def test_the_idle_connections_driver_holds_its_sockets_and_still_gets_an_answer(
        template: Path) -> None:
    result = faults.idle_connections(template, count=20, wait_closed=False)
    assert result["callback_answered"] and result["open_after_1s"] == 20
    assert result["rss_with_idle_mb"] > 50  # read from the served process, not this one


def test_the_webhook_driver_sees_the_refusal(template: Path) -> None:
    result = faults.webhook_wrong_secret(template, megabytes=2, concurrent=2)
    assert result["status"] == "HTTP/1.1 403 Forbidden" and result["concurrent"] == 2
