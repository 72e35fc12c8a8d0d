"""Periods and ages in words, one wording for every message that states one to an operator.

Cooldowns, topic retention, ages of control records and progress estimates all read alike:
`12 hours, 5 minutes and 3 seconds`, `30 days`.
"""

from __future__ import annotations

from datetime import timedelta

import humanize

# A month or a year of humanize's is an average length; retention and deadlines are set in days.
_UNITS_NOT_USED = ("months", "years")


def duration_text(period: timedelta) -> str:
    """`period` in words to the whole second, days the largest unit (negative reads as 0)."""
    whole = timedelta(seconds=max(int(period.total_seconds()), 0))
    return humanize.precisedelta(whole, suppress=_UNITS_NOT_USED)
