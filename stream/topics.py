"""Topic objects: loyalty events in, the internal Ometria outbox, and the dead-letter topics."""

from __future__ import annotations

from stream.app import app
from stream.settings import get_settings

_topics = get_settings().topics

# Values stay raw bytes: parsing is ours, so a bad record can be dead-lettered byte for byte.
loyalty_events_topic = app.topic(_topics.events, key_type=bytes, value_type=bytes)
ometria_outbox_topic = app.topic(_topics.outbox, key_type=bytes, value_type=bytes)
events_dead_letter_topic = app.topic(_topics.dead_letter, key_type=bytes, value_type=bytes)
outbox_dead_letter_topic = app.topic(_topics.outbox_dead_letter, key_type=bytes, value_type=bytes)
