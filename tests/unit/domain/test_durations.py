"""One wording for every period and age an operator reads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stream.domain.durations import duration_text


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (timedelta(seconds=7), "7 seconds"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=59, seconds=3), "59 minutes and 3 seconds"),
        (timedelta(hours=12, minutes=5, seconds=3), "12 hours, 5 minutes and 3 seconds"),
        (timedelta(days=7), "7 days"),
        (timedelta(days=1, hours=12), "1 day and 12 hours"),
    ],
)
def test_duration_text_names_each_unit_in_words(period, text):
    assert duration_text(period) == text


@pytest.mark.parametrize(("days", "text"), [(31, "31 days"), (400, "400 days")])
def test_duration_text_long_periods_stay_in_days(days, text):
    assert duration_text(timedelta(days=days)) == text


def test_duration_text_drops_fractions_of_a_second():
    assert duration_text(timedelta(seconds=3.7)) == "3 seconds"
    assert duration_text(timedelta(milliseconds=400)) == "0 seconds"


def test_duration_text_negative_period_reads_as_zero():
    assert duration_text(timedelta(seconds=-5)) == "0 seconds"
