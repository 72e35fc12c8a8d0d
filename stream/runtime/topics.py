"""Faust topic objects: loyalty events in, and their dead letters (the pusher reads the outbox
with its own consumer, stream.runtime.pusher)."""

from __future__ import annotations

from stream.runtime.app import app
from stream.settings import get_settings

_topics = get_settings().topics

# Values stay raw bytes: parsing is ours, so a bad record can be dead-lettered byte for byte.
loyalty_events_topic = app.topic(_topics.events, key_type=bytes, value_type=bytes)
events_dead_letter_topic = app.topic(_topics.dead_letter, key_type=bytes, value_type=bytes)
