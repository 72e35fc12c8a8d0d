"""The backfill cooldown: whether a full backfill may run now, from the control topic's record.

A full backfill re-sends every contact, so one runs at most once per STREAM_BACKFILL_COOLDOWN
(the command records the time in the control topic's `backfill` record, stream.runtime.control);
a run for some customers only is neither held nor counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from stream.domain.durations import duration_text
from stream.runtime.control import UnreadableControlRecord, backfill_time


def cooldown_left(last: datetime | None, now: datetime, cooldown: timedelta) -> timedelta | None:
    """How long until the next backfill is allowed, or None when it is allowed now."""
    if last is None or now - last >= cooldown:
        return None
    return cooldown - (now - last)


def cooldown_refusal(record: bytes | None, now: datetime, cooldown: timedelta) -> str | None:
    """Why a full backfill must wait, given the last run's control record (None: it may run now)."""
    try:
        last = backfill_time(record)
    except UnreadableControlRecord as exc:
        # Read as "no backfill", a bad record would lift the cooldown it exists to hold.
        return f"{exc}, so the cooldown (STREAM_BACKFILL_COOLDOWN) cannot be judged"
    left = cooldown_left(last, now, cooldown)
    if left is None:
        return None
    return (
        f"a backfill ran less than {duration_text(cooldown)} ago (STREAM_BACKFILL_COOLDOWN); "
        f"the next is allowed in {duration_text(left)}"
    )
