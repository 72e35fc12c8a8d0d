"""The control topic's pause record: written and read back, and what a bad one means."""

from __future__ import annotations

from datetime import UTC, datetime

from stream.runtime.control import PauseState, backfill_record, backfill_time


def test_a_pause_record_reads_back_as_written():
    state = PauseState(paused=True, since=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    assert PauseState.from_bytes(state.to_bytes()) == state


def test_a_deleted_pause_record_means_not_paused():
    assert PauseState.from_bytes(None) == PauseState(paused=False, since=None)


def test_an_unreadable_pause_record_keeps_pushers_paused():
    assert PauseState.from_bytes(b"{not json").paused
    assert PauseState.from_bytes(b'{"since": null}').paused


def test_a_backfill_record_gives_back_its_time():
    at = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert backfill_time(backfill_record(at, 12)) == at
    assert backfill_time(b"[]") is None
