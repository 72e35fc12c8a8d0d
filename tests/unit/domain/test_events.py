from __future__ import annotations

import orjson
import pytest

from stream.domain.events import InvalidEvent, check_key, parse_event
from tests.support.events import event_doc, make_event


def _raw(doc) -> bytes:
    return orjson.dumps(doc)


def test_parse_points_earned_reads_decimal_credits_exactly():
    event = make_event("points.earned", {"points": 5, "credits": "2.10"})
    assert str(event.data.credits) == "2.10"


def test_parse_unknown_top_level_field_is_rejected_with_its_name():
    doc = event_doc("points.earned", {"points": 1})
    doc["colour"] = "blue"
    with pytest.raises(InvalidEvent, match="colour: Extra inputs are not permitted"):
        parse_event(_raw(doc))


def test_parse_unknown_data_field_is_tolerated():
    event = make_event("points.earned", {"points": 1, "new_field": {"x": 1}})
    assert event.data.points == 1


def test_parse_naive_time_is_rejected():
    doc = event_doc("points.earned", {"points": 1})
    doc["occurred_at"] = "2026-11-21T10:00:00"
    with pytest.raises(
        InvalidEvent,
        match=r"occurred_at: expected an ISO 8601 date-time with a UTC offset.*no offset",
    ):
        parse_event(_raw(doc))


def test_parse_float_money_is_rejected():
    with pytest.raises(InvalidEvent, match=r"data.credits: expected a decimal"):
        parse_event(_raw(event_doc("points.earned", {"points": 1, "credits": 2.1})))


def test_parse_unknown_type_names_the_type_field_and_the_known_types():
    with pytest.raises(
        InvalidEvent,
        match=r"^\? event e\d+: type: expected one of the event types .*'points\.earned'",
    ):
        parse_event(_raw(event_doc("points.stolen")))


def test_parse_missing_customer_id_is_rejected():
    doc = event_doc("points.earned", {"points": 1})
    del doc["customer"]["id"]
    with pytest.raises(InvalidEvent, match=r"customer\.id: Field required"):
        parse_event(_raw(doc))


def test_parse_negative_points_are_rejected():
    with pytest.raises(InvalidEvent, match=r"data\.points: Input should be greater than or equal"):
        parse_event(_raw(event_doc("points.earned", {"points": -3})))


def test_parse_garbage_bytes_is_unparsable_json():
    with pytest.raises(InvalidEvent) as info:
        parse_event(b"\xff\x00not json")
    assert info.value.error_class == "UnparsableJSON"


def test_parse_oversized_record_is_rejected_before_parsing():
    with pytest.raises(InvalidEvent) as info:
        parse_event(b" " * (64 * 1024 + 1))
    assert info.value.error_class == "RecordTooLarge"


@pytest.mark.parametrize(
    ("given", "stored"), [("03-15", "03-15"), ("1990-03-15", "03-15"), ("--02-29", "02-29")]
)
def test_parse_birthday_keeps_month_and_day(given, stored):
    assert make_event("birthday.updated", {"date_of_birth": given}).data.date_of_birth == stored


def test_parse_impossible_birthday_is_rejected():
    with pytest.raises(InvalidEvent, match="not a calendar day"):
        parse_event(_raw(event_doc("birthday.updated", {"date_of_birth": "02-30"})))


def test_check_key_other_customer_is_rejected():
    event = make_event("reward.used", {"redemption_id": "r", "code": "C"}, customer_id="c1")
    check_key(event, b"c1")
    with pytest.raises(InvalidEvent, match="key events by customer id"):
        check_key(event, b"c2")
    with pytest.raises(InvalidEvent, match="no key"):
        check_key(event, None)
