"""One raw input record → a loyalty event, or the reason it is dead-lettered.

The worker (which also folds again what `replay` rewinds) and `redrive` call `admit`, so a
record is judged by the same rules wherever it is read: the contract (`parse_event`), the Kafka key
(`check_key`) and the event-time window. Pure: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from stream.domain.events import InvalidEvent, LoyaltyEvent, check_key, parse_event
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class EventWindow:
    """How old and how far ahead of the reader's clock an event's occurred_at may be."""

    max_age: timedelta = timedelta(days=3650)
    future_skew: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventWindow:
        return cls(settings.events.max_age, settings.events.future_skew)


def _span(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


def check_time(event: LoyaltyEvent, now: datetime, window: EventWindow) -> None:
    """Reject an event outside the window [now - max_age, now + future_skew].

    Raises:
        InvalidEvent: the reason names the bound and the setting that sets it; the distance,
            not the time itself, which is the record's value.
    """
    ahead = event.occurred_at - now  # aware datetimes: compared as instants
    if ahead > window.future_skew:
        raise InvalidEvent(
            f"occurred_at is {_span(ahead)} ahead of this worker's clock; events may be at "
            f"most {_span(window.future_skew)} ahead "
            "(STREAM_EVENTS__FUTURE_SKEW): fix the producer's clock",
            error_class="EventTimeOutOfRange",
        )
    if -ahead > window.max_age:
        raise InvalidEvent(
            f"occurred_at is {_span(ahead)} old; events may be at most {_span(window.max_age)} "
            "old (STREAM_EVENTS__MAX_AGE)",
            error_class="EventTimeOutOfRange",
        )


def admit(
    value: bytes | None, key: bytes | None, now: datetime, window: EventWindow
) -> LoyaltyEvent:
    """The event a raw record holds, checked exactly as the worker checks it.

    Raises:
        InvalidEvent: the record must be dead-lettered; `reason` names the field and the rule.
    """
    event = parse_event(value)
    check_key(event, key)
    check_time(event, now, window)
    return event
