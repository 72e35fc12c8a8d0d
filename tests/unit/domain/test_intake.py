"""The one intake path (stream.domain.intake.admit) and the pure core under arbitrary input.

Property tests: whatever bytes or times arrive, parsing, folding, firing and mapping either
work or reject the record with InvalidEvent; no other exception type escapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.domain import events
from stream.domain.contact_mapping import map_contact
from stream.domain.events import InvalidEvent, parse_event
from stream.domain.intake import EventWindow, admit
from stream.domain.mapping import load_preset
from stream.domain.profile import Profile, fold, stamp_of
from stream.domain.triggers import TriggerConfig, fire
from stream.settings import load_settings
from tests.support.events import event_doc

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WINDOW = EventWindow()


def record_at(when: datetime | str, customer_id: str = "c1") -> bytes:
    doc = event_doc("points.earned", {"points": 5}, customer_id=customer_id)
    doc["occurred_at"] = when if isinstance(when, str) else when.isoformat()
    return orjson.dumps(doc)


def test_event_just_inside_the_future_skew_is_admitted():
    event = admit(record_at(NOW + timedelta(minutes=4, seconds=59)), b"c1", NOW, WINDOW)
    assert event.occurred_at == NOW + timedelta(minutes=4, seconds=59)


def test_event_beyond_the_future_skew_names_the_bound_and_its_setting():
    with pytest.raises(InvalidEvent) as caught:
        admit(record_at(NOW + timedelta(minutes=6)), b"c1", NOW, WINDOW)
    assert caught.value.error_class == "EventTimeOutOfRange"
    assert "at most 5.0 minutes ahead (STREAM_EVENTS__FUTURE_SKEW)" in caught.value.reason


def test_event_older_than_the_max_age_names_the_bound_and_its_setting():
    with pytest.raises(InvalidEvent) as caught:
        admit(record_at("0999-01-01T00:00:00+00:00"), b"c1", NOW, WINDOW)
    assert "at most 3650.0 days old (STREAM_EVENTS__MAX_AGE)" in caught.value.reason


def test_event_just_inside_the_max_age_is_admitted():
    admit(record_at(NOW - timedelta(days=3649)), b"c1", NOW, WINDOW)


def test_window_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("STREAM_EVENTS__MAX_AGE", "30d")
    monkeypatch.setenv("STREAM_EVENTS__FUTURE_SKEW", "1m")
    window = EventWindow.from_settings(load_settings())
    assert window == EventWindow(timedelta(days=30), timedelta(minutes=1))
    with pytest.raises(InvalidEvent, match="STREAM_EVENTS__MAX_AGE"):
        admit(record_at(NOW - timedelta(days=31)), b"c1", NOW, window)


@pytest.fixture
def email_checks(monkeypatch):
    """The addresses email-validator is asked about (its cache emptied first)."""
    asked: list[str] = []

    def counting(address, **options):
        asked.append(address)
        return real(address, **options)

    real = events.validate_email
    monkeypatch.setattr(events, "validate_email", counting)
    events._is_email.cache_clear()
    yield asked
    events._is_email.cache_clear()


def _updated(email: str, new_email: str | None = None) -> bytes:
    data = {"email": new_email} if new_email else {}
    return orjson.dumps(event_doc("customer.updated", data, email=email, at=NOW - timedelta(1)))


def test_an_email_the_stored_profile_holds_is_not_checked_again(email_checks):
    known = "ana@example.com"
    admit(_updated(known, known), b"c1", NOW, WINDOW, known_email=known)
    assert email_checks == []
    admit(_updated(known, known), b"c1", NOW, WINDOW)
    assert email_checks == [known]  # the envelope's and the data's: one check, then the cache


def test_an_email_other_than_the_stored_one_is_checked_and_refused_when_invalid(email_checks):
    known = "ana@example.com"
    assert admit(_updated(known, "ana@example.org"), b"c1", NOW, WINDOW, known_email=known)
    assert email_checks == ["ana@example.org"]
    with pytest.raises(InvalidEvent, match=r"data\.email: expected an email address"):
        admit(_updated(known, "ana@@example.org"), b"c1", NOW, WINDOW, known_email=known)
    with pytest.raises(InvalidEvent, match=r"customer\.email: expected an email address"):
        admit(_updated("not an address"), b"c1", NOW, WINDOW, known_email=known)


def test_record_keyed_by_another_customer_is_rejected_by_intake():
    with pytest.raises(InvalidEvent) as caught:
        admit(record_at(NOW), b"c2", NOW, WINDOW)
    assert caught.value.error_class == "KeyMismatch"


# --- properties: no exception type but InvalidEvent escapes --------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
KINDS = [
    ("points.earned", {"points": 5, "balance": {"points": 10}}),
    ("points.redeemed", {"redemption_id": "r", "code": "C", "points": 1, "reward": {"name": "x"}}),
    ("tier.changed", {"tier": "Gold", "tier_expires_at": "2027-01-01T00:00:00Z"}),
    ("customer.enrolled", {"date_of_birth": "03-15", "referral_url": "https://ex.com/r"}),
    ("customer.updated", {"email": "n@example.com", "tags": ["a"]}),
    ("points.expiring", {"points": 3, "expires_at": "2027-01-01T00:00:00Z"}),
    ("membership.started", {"membership_tier_id": "m"}),
    ("referral.completed", {"reward": "£5"}),
]
MAPPINGS = [load_preset("rivo").contact, load_preset("loyaltylion").contact]
CONFIG = TriggerConfig(rewards=())


@st.composite
def tampered_documents(draw):
    """A valid event with one field (top level, customer or data) replaced by any JSON."""
    kind, data = draw(st.sampled_from(KINDS))
    doc = event_doc(kind, dict(data), email="a@example.com", first_name="Ann")
    where = draw(st.sampled_from(["top", "customer", "data"]))
    target = doc if where == "top" else doc[where]
    name = draw(st.sampled_from([*target.keys(), "extra"]))
    target[name] = draw(json_values)
    return doc


def _through_the_core(value: bytes, now: datetime) -> None:
    try:
        event = admit(value, b"c1", now, WINDOW)
    except InvalidEvent:
        return
    profile: Profile | None = None
    for _ in range(2):  # twice: the second time as a known customer
        after = fold(profile, event).profile
        fire(event, profile, after, CONFIG, now)
        for mapping in MAPPINGS:
            map_contact(after, mapping, "loyalty")
        profile = after


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_any_json_value_is_an_event_or_an_invalid_event(value):
    _through_the_core(orjson.dumps(value), NOW)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=tampered_documents())
def test_an_event_with_any_field_replaced_is_processed_or_rejected(doc):
    _through_the_core(orjson.dumps(doc), NOW)


@settings(max_examples=200, deadline=None)
@given(value=st.binary(max_size=200))
def test_any_bytes_are_an_event_or_an_invalid_event(value):
    _through_the_core(value, NOW)


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
any_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59), timezones=offsets
)


@settings(max_examples=400, deadline=None)
@given(when=any_times, now=any_times, other=st.sampled_from(KINDS))
def test_any_event_time_and_clock_are_processed_or_rejected(when, now, other):
    kind, data = other
    doc = event_doc(kind, dict(data), email="a@example.com")
    doc["occurred_at"] = when.isoformat()
    _through_the_core(orjson.dumps(doc), now)


@settings(max_examples=300, deadline=None)
@given(first=any_times, second=any_times)
def test_order_stamps_sort_as_their_instants(first, second):
    docs = [
        event_doc("points.earned", {"points": 1}, at=first),
        event_doc("points.earned", {"points": 1}, at=second),
    ]
    try:
        events = [parse_event(orjson.dumps(doc)) for doc in docs]
    except InvalidEvent:
        return  # not convertible to UTC: rejected, never stamped
    a, b = (stamp_of(e) for e in events)
    assert len(a.split("|")[0]) == len(b.split("|")[0]) == 27
    if first.astimezone(UTC) != second.astimezone(UTC):
        assert (a < b) == (first.astimezone(UTC) < second.astimezone(UTC))
