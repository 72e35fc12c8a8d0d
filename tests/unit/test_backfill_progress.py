"""The backfill cooldown and the plain progress lines a Job log gets."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from stream.ops.backfill import cooldown_left
from stream.ops.progress import ProgressView

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_first_backfill_is_allowed():
    assert cooldown_left(None, NOW, HOUR) is None


def test_a_backfill_within_the_cooldown_waits_the_rest_of_it():
    assert cooldown_left(NOW - timedelta(minutes=20), NOW, HOUR) == timedelta(minutes=40)


def test_a_backfill_after_the_cooldown_is_allowed():
    assert cooldown_left(NOW - HOUR, NOW, HOUR) is None


def test_without_a_terminal_progress_is_one_plain_line_per_interval_and_one_at_the_end():
    out = io.StringIO()  # not a terminal
    with ProgressView("backfill t", unit="records", out=out, every=0.0) as view:
        view.update(5, 20, "2 contacts queued")
        view.update(20, 20, "9 contacts queued")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("backfill t: 5/20 records (25%), ")
    assert "ETA " in lines[0]
    assert lines[-1].startswith("backfill t: 20/20 records (100%), ")
    assert lines[-1].endswith("9 contacts queued")
    assert len(lines) == 3


def test_without_a_terminal_no_line_is_printed_before_the_interval():
    out = io.StringIO()
    with ProgressView("b", unit="records", out=out, every=3600.0) as view:
        for n in range(100):
            view.update(n, 100)
    assert len(out.getvalue().splitlines()) == 1
