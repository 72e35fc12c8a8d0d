"""The backfill cooldown: when a full backfill may run again (stream.runtime.backfill_cooldown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stream.runtime.backfill_cooldown import cooldown_left, cooldown_refusal
from stream.runtime.control import backfill_record

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_first_backfill_is_allowed():
    assert cooldown_left(None, NOW, HOUR) is None


def test_a_backfill_within_the_cooldown_waits_the_rest_of_it():
    assert cooldown_left(NOW - timedelta(minutes=20), NOW, HOUR) == timedelta(minutes=40)


def test_a_backfill_after_the_cooldown_is_allowed():
    assert cooldown_left(NOW - HOUR, NOW, HOUR) is None


def test_cooldown_refusal_within_the_cooldown_says_how_long_to_wait():
    record = backfill_record(NOW - timedelta(minutes=20), 3)

    assert cooldown_refusal(record, NOW, HOUR) == (
        "a backfill ran less than 1 hour ago (STREAM_BACKFILL_COOLDOWN); "
        "the next is allowed in 40 minutes"
    )


def test_cooldown_refusal_unreadable_record_holds_the_backfill():
    refusal = cooldown_refusal(b'{"at": "2026-11-30T15:00:00"}', NOW, HOUR)

    assert refusal is not None
    assert refusal.endswith("so the cooldown (STREAM_BACKFILL_COOLDOWN) cannot be judged")


def test_cooldown_refusal_no_record_allows_the_backfill():
    assert cooldown_refusal(None, NOW, HOUR) is None
