"""The control topic's records: written and read back, and what a bad one means."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stream.runtime import control
from stream.runtime.control import PAUSE, PauseState, backfill_record, backfill_time

AT = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def test_a_pause_record_reads_back_as_written():
    state = PauseState(paused=True, since=AT)
    assert PauseState.from_bytes(state.to_bytes()) == state


def test_a_deleted_pause_record_means_not_paused():
    assert PauseState.from_bytes(None) == PauseState(paused=False, since=None)


def test_an_unreadable_pause_record_keeps_pushers_paused():
    assert PauseState.from_bytes(b"{not json").paused
    assert PauseState.from_bytes(b'{"since": null}').paused


@pytest.mark.parametrize("switch", [b"null", b"0", b'""', b"[]", b'"false"', b"{}"])
def test_a_pause_record_whose_switch_is_not_a_boolean_keeps_pushers_paused(switch):
    assert PauseState.from_bytes(b'{"paused": ' + switch + b', "since": null}').paused


@pytest.mark.parametrize("since", [b'"2026-11-30T15:00:00"', b'"yesterday"', b"1764514800"])
def test_a_pause_record_with_an_unreadable_since_keeps_its_switch_and_no_time(since):
    for paused in (b"true", b"false"):
        state = PauseState.from_bytes(b'{"paused": ' + paused + b', "since": ' + since + b"}")
        assert state == PauseState(paused=paused == b"true", since=None)


def test_a_backfill_record_gives_back_its_time():
    assert backfill_time(backfill_record(AT, 12)) == AT
    assert backfill_time(backfill_record(AT, None)) == AT
    assert backfill_time(None) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"{not json",
        b'{"contacts": 3}',
        b'{"at": "2026-11-30T15:00:00", "contacts": 3}',
        b'{"at": "soon", "contacts": 3}',
        b'{"at": "2026-11-30T15:00:00+00:00", "contacts": -1}',
    ],
)
def test_an_unreadable_backfill_record_raises_rather_than_reading_as_no_backfill(raw):
    with pytest.raises(control.UnreadableControlRecord, match="backfill record"):
        backfill_time(raw)


def test_a_deployments_own_record_wins_over_the_unscoped_one():
    records = control.ControlRecords(
        "shop-a", {b"pause": b"unscoped", b"shop-a/pause": b"own", b"shop-b/pause": b"theirs"}
    )
    assert records.get(control.PAUSE) == b"own"
    assert not records.unscoped(control.PAUSE)


def test_a_deployment_without_its_own_record_reads_the_unscoped_one_never_anothers():
    records = control.ControlRecords("shop-a", {b"pause": b"unscoped", b"shop-b/pause": b"theirs"})
    assert records.get(control.PAUSE) == b"unscoped"
    assert records.unscoped(control.PAUSE)
    assert control.ControlRecords("shop-a", {b"shop-b/pause": b"theirs"}).get(PAUSE) is None


def test_a_deleted_own_record_falls_back_to_the_unscoped_one():
    records = control.ControlRecords("shop-a", {b"backfill": b"unscoped", b"shop-a/backfill": None})
    assert records.get(control.BACKFILL) == b"unscoped"
    assert records.unscoped(control.BACKFILL)


def test_control_keys_name_the_deployment():
    assert control.scoped_key("shop-a", control.PAUSE) == b"shop-a/pause"
