"""The id file of `forget` and the erasure event it publishes."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from stream.domain.intake import EventWindow, admit
from stream.ops.forget import ForgetRefused, erasure_event, forget, read_ids
from stream.settings import load_settings


def test_read_ids_skips_blank_and_comment_lines_and_keeps_a_hash_inside_an_id():
    lines = ["# requests of week 48", "", "  c-1  ", "#c-2", "c#3", "\t"]
    assert read_ids(lines) == ["c-1", "c#3"]


def test_erasure_event_is_admitted_as_the_workers_admit_input():
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    value = orjson.dumps(erasure_event("c-1", "erase-1", now))
    event = admit(value, b"c-1", now, EventWindow())
    assert event.type == "customer.erased"
    assert event.source == "loyalty-stream forget"


async def test_forget_refuses_when_the_workers_take_no_plain_json(monkeypatch):
    monkeypatch.setenv("STREAM_REGISTRY__ACCEPT_UNFRAMED", "false")
    with pytest.raises(ForgetRefused) as caught:
        await forget(load_settings(), ["c-1"], dry_run=True, now=datetime.now(UTC))
    assert "STREAM_REGISTRY__ACCEPT_UNFRAMED is false" in str(caught.value)
