"""The replay mark the workers read at start-up, `--from`, and the local table wipe."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from stream.domain.events import parse_event
from stream.domain.mapping import load_preset
from stream.domain.sync import SyncRules, apply_event
from stream.domain.triggers import TriggerConfig
from stream.ops.replay import parse_from, wipe_local_tables
from stream.runtime.control import UnreadableControlRecord
from stream.runtime.replay_mark import ReplayMark, contact_generation, generation_of

AT = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def test_a_replay_mark_reads_back_as_written():
    mark = ReplayMark(
        AT, start={0: 3, 1: 0}, until={0: 10, 1: 4}, reset="abc", source="earliest", generation=2
    )
    assert ReplayMark.from_bytes(mark.to_bytes()) == mark
    assert ReplayMark.from_bytes(None) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        b'{"at": "2026-11-30T15:00:00+00:00", "start": {"0": 0}}',
        b'{"at": "2026-11-30T15:00:00", "start": {"0": 0}, "until": {"0": 5}}',
        b'{"at": "2026-11-30T15:00:00+00:00", "start": {"zero": 0}, "until": {"0": 5}}',
        b'{"at": "2026-11-30T15:00:00+00:00", "start": {"0": -1}, "until": {"0": 5}}',
        b'{"at": "2026-11-30T15:00:00+00:00", "start": {}, "until": {}, "reset": 7}',
    ],
)
def test_an_unreadable_replay_mark_raises_an_error_naming_the_record(raw):
    with pytest.raises(UnreadableControlRecord, match="replay record"):
        ReplayMark.from_bytes(raw)


def test_a_replay_mark_written_before_generations_is_generation_zero():
    old = orjson.dumps({"at": AT.isoformat(), "start": {"0": 0}, "until": {"0": 5}, "reset": "r"})
    mark = ReplayMark.from_bytes(old)
    assert mark is not None
    assert mark.generation == 0


def test_only_a_state_reset_starts_a_new_contact_version_generation():
    assert contact_generation(None, reset_state=False) == 0
    assert contact_generation(None, reset_state=True) == 1
    mark = ReplayMark(AT, start={}, until={}, reset="r", generation=3)
    assert contact_generation(mark, reset_state=True) == 4
    assert contact_generation(mark, reset_state=False) == 3, "a rewind keeps the generation"


def test_a_replay_folds_again_the_records_between_start_and_the_end_it_saw():
    mark = ReplayMark(AT, start={0: 3, 1: 4}, until={0: 10, 1: 4})
    assert mark.records() == 7


def test_from_takes_earliest_or_an_iso_time_in_utc_by_default():
    assert parse_from("earliest") is None
    assert parse_from("2026-11-30T15:00:00") == AT
    assert parse_from("2026-11-30T16:00:00+01:00") == AT
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_from("yesterday")


def test_a_worker_wipes_its_local_tables_once_per_state_reset(tmp_path):
    tables = tmp_path / "v1" / "tables"
    tables.mkdir(parents=True)
    (tables / "customer_to_profile-0.db").write_text("old")
    mark = ReplayMark(AT, start={0: 0}, until={0: 5}, reset="r1")
    assert wipe_local_tables(tables, tmp_path, mark)
    assert not tables.exists()
    tables.mkdir(parents=True)
    assert not wipe_local_tables(tables, tmp_path, mark), "the same reset wipes once"
    assert tables.exists()
    assert not wipe_local_tables(tables, tmp_path, ReplayMark(AT, start={}, until={}))


def test_a_replayed_event_folds_the_same_but_fires_no_campaign():
    mapping = load_preset("rivo")
    rules = SyncRules(mapping, "loyalty", TriggerConfig(options=mapping.triggers))
    earned = parse_event(
        orjson.dumps(
            {
                "event_id": "e1",
                "type": "points.earned",
                "occurred_at": AT.isoformat(),
                "customer": {"id": "c1", "email": "c1@example.com"},
                "data": {"points": 10},
            }
        )
    )
    live = apply_event(None, earned, rules, AT, offset=4)
    replayed = apply_event(None, earned, rules, AT, offset=4, replayed=True)
    assert live.records, "the live fold fires loyalty_points_earned"
    assert replayed.records == ()
    assert replayed.suppressed == ("replayed",) * len(live.records)
    assert replayed.profile == live.profile


@pytest.mark.parametrize(
    ("raw", "generation"),
    [
        (None, 0),
        (ReplayMark(AT, start={}, until={}, generation=4).to_bytes(), 4),
        # Unreadable as a mark, its generation still read: contacts keep being newer.
        (b'{"at": "2026-11-30T15:00:00", "generation": 3}', 3),
        (b'{"at": "2026-11-30T15:00:00+00:00", "start": {}}', 0),
        (b"{not json", None),
        (b'{"generation": "3"}', None),
        (b'{"generation": true}', None),
        (b"[]", None),
    ],
)
def test_the_generation_of_a_replay_record_is_read_even_from_an_unreadable_one(raw, generation):
    assert generation_of(raw) == generation


@pytest.mark.parametrize(
    ("ends", "fits"),
    [
        ({0: 10, 1: 4}, True),
        ({0: 12, 1: 9, 2: 0}, True),  # offsets grew and a partition was added since
        ({0: 9, 1: 4}, False),  # partition 0 never reached 10: another topic's mark
        ({0: 10}, False),  # no partition 1
        ({}, False),
    ],
)
def test_a_replay_mark_fits_only_an_input_topic_that_reached_every_end_it_names(ends, fits):
    mark = ReplayMark(AT, start={0: 0, 1: 0}, until={0: 10, 1: 4})
    assert mark.fits(ends) is fits
