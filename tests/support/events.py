"""Event builders for the pure core: valid event documents and parsed events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stream.domain.events import LoyaltyEvent, parse_event

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
_ids = itertools.count()


def event_doc(
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    customer_id: str = "c1",
    email: str | None = None,
    at: datetime | float = 0.0,
    event_id: str | None = None,
    **customer: Any,
) -> dict[str, Any]:
    """A valid event document; `at` is a datetime or seconds after T0."""
    occurred = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    person: dict[str, Any] = {"id": customer_id, **customer}
    if email is not None:
        person["email"] = email
    return {
        "event_id": event_id or f"e{next(_ids)}",
        "type": event_type,
        "occurred_at": occurred.isoformat(),
        "customer": person,
        "data": data or {},
    }


def make_event(event_type: str, data: dict[str, Any] | None = None, **kwargs: Any) -> LoyaltyEvent:
    return parse_event(orjson.dumps(event_doc(event_type, data, **kwargs)))
