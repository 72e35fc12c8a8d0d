"""Records framed by Confluent's serializers (byte 0, a 4-byte schema id, the payload)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import orjson

from stream.domain.intake import EventWindow, admit
from tests.conftest import event_doc

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def test_json_schema_framed_record_is_admitted_like_plain_json():
    doc = event_doc("points.earned", {"points": 5})
    plain = admit(orjson.dumps(doc), b"c1", NOW, EventWindow())
    event = admit(framed(7, orjson.dumps(doc)), b"c1", NOW, EventWindow())
    assert event == plain
