"""Write a table key after a batch as if inside that key's own event.

A Faust table sends each write to the changelog partition of the *current event* (the one the
stream is iterating); `take_events` yields a whole batch, after which there is no current
event, and a batch holds events of several partitions anyway. Making the key's own (last)
event current for the write keeps the changelog co-partitioned with the input. This leans on
`faust.streams._current_event`, the context variable `faust.current_event()` reads; revisit it
when upgrading faust-streaming (pinned < 0.16).
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def set_in_event(table: Any, key: str, value: Any, event: Any) -> None:
    """`table[key] = value`, with `event` (the key's last event) as the current event."""
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)
