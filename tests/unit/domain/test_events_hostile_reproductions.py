"""Issue 11's reproductions: hostile values and bad clocks, each as it was found.

Only the pure core's public functions are used (parse, fold, triggers), so each test names the
behaviour it pins down whatever else changes around it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from stream.domain.events import InvalidEvent, parse_event
from stream.domain.profile import Profile, fold
from stream.domain.triggers import TriggerConfig, fire
from tests.support.events import T0, event_doc, make_event

EMAIL = "sarah@example.com"


def fold_all(events, profile: Profile | None = None) -> Profile:
    for event in events:
        profile = fold(profile, event).profile
    assert profile is not None
    return profile


def raw(doc) -> bytes:
    return orjson.dumps(doc)


def test_snapshot_dated_year_0999_then_earning_in_2026_adds_to_the_snapshot():
    old = make_event(
        "points.adjusted",
        {"points": 0, "balance": {"points": 7}},
        at=datetime(999, 1, 1, tzinfo=UTC),
    )
    earned = make_event("points.earned", {"points": 500}, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert fold_all([old, earned]).points.balance == 507


def test_year_one_with_a_positive_offset_is_rejected_not_an_overflow():
    doc = event_doc("points.earned", {"points": 1})
    doc["occurred_at"] = "0001-01-01T00:00:00+01:00"
    with pytest.raises(InvalidEvent, match="occurred_at: lies outside the years 0001-9999"):
        parse_event(raw(doc))


def test_snapshot_from_a_clock_an_hour_ahead_does_not_freeze_the_balance():
    ahead = make_event("points.adjusted", {"points": 0, "balance": {"points": 100}}, at=3600)
    earned = [make_event("points.earned", {"points": 50}, at=n) for n in range(5)]
    taken = make_event("points.adjusted", {"points": -30}, at=10)
    profile = fold_all([ahead, *earned, taken])
    assert profile.points.balance == 320
    assert profile.points.lifetime == 250


def test_late_delta_after_ledger_compaction_still_counts():
    earned = [make_event("points.earned", {"points": 1}, at=10 + n) for n in range(257)]
    late = make_event("points.earned", {"points": 100}, at=0)
    assert fold_all([*earned, late]).points.balance == 357


def test_customer_updated_with_new_email_in_data_takes_the_new_email():
    enrolled = make_event("customer.enrolled", {}, email="old@example.com", at=0)
    updated = make_event(
        "customer.updated", {"email": "new@example.com"}, email="old@example.com", at=5
    )
    assert fold_all([enrolled, updated]).email == "new@example.com"


def test_customer_updated_with_new_name_in_data_takes_the_new_name():
    enrolled = make_event("customer.enrolled", {}, email=EMAIL, first_name="Ann", at=0)
    updated = make_event("customer.updated", {"first_name": "Anna"}, first_name="Ann", at=5)
    assert fold_all([enrolled, updated]).first_name == "Anna"


def test_late_tier_change_without_previous_tier_fires_no_downgrade():
    gold = make_event(
        "tier.changed", {"tier": "Gold", "previous_tier": "Silver"}, email=EMAIL, at=10
    )
    before = fold_all([gold])
    late = make_event("tier.changed", {"tier": "Silver"}, email=EMAIL, at=5)
    after = fold(before, late).profile
    assert after.tier.name == "Gold"
    assert fire(late, before, after, TriggerConfig(), T0 + timedelta(minutes=1)).records == []


def test_event_dated_2099_fires_no_campaign():
    future = make_event(
        "points.earned", {"points": 5}, email=EMAIL, at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    after = fold(None, future).profile
    assert fire(future, None, after, TriggerConfig(), T0).records == []


@pytest.mark.parametrize("points", [-999_999, 9_300_000_000_000_000_000])
def test_out_of_range_balance_snapshot_is_rejected_naming_the_field(points):
    doc = event_doc("points.earned", {"points": 5, "balance": {"points": points}})
    with pytest.raises(InvalidEvent, match=r"data\.balance\.points: "):
        parse_event(raw(doc))


@pytest.mark.parametrize(
    "email", ["<script>@a.b", "a\u0000b@ex.com", "a@b@example.com", "x@localhost"]
)
def test_malformed_email_is_rejected_without_echoing_it(email):
    doc = event_doc("points.earned", {"points": 5}, email=email)
    with pytest.raises(InvalidEvent, match=r"customer\.email: expected an email address") as caught:
        parse_event(raw(doc))
    assert email not in caught.value.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("first_name", "An\u0000na"), ("last_name", "evil\u202egnp.exe"), ("first_name", "x\u2066y")],
)
def test_control_and_bidi_override_characters_in_names_are_rejected(field, value):
    doc = event_doc("customer.enrolled", {}, email=EMAIL, **{field: value})
    with pytest.raises(InvalidEvent, match=rf"customer\.{field}: contains the control or bidi"):
        parse_event(raw(doc))


@pytest.mark.parametrize("when", [1763719200, 1763719200.5, "1763719200"])
def test_epoch_occurred_at_is_rejected_asking_for_iso_8601_with_offset(when):
    doc = event_doc("points.earned", {"points": 5})
    doc["occurred_at"] = when
    with pytest.raises(
        InvalidEvent, match="occurred_at: expected an ISO 8601 date-time with a UTC offset"
    ):
        parse_event(raw(doc))


def test_referral_url_longer_than_ometria_accepts_is_rejected_not_cut():
    doc = event_doc("customer.enrolled", {"referral_url": "https://ex.com/r?" + "x" * 2000})
    with pytest.raises(InvalidEvent, match=r"data\.referral_url: String should have at most 512"):
        parse_event(raw(doc))


def test_control_character_in_an_identifier_is_rejected():
    doc = event_doc("points.earned", {"points": 5}, customer_id="c1\u0000")
    with pytest.raises(InvalidEvent, match=r"customer\.id: contains the control"):
        parse_event(raw(doc))


def test_unicode_names_and_plus_addressed_emails_are_accepted():
    doc = event_doc(
        "customer.enrolled",
        {},
        email="zoë+loyalty@example.co.uk",
        first_name="Zoë",
        last_name="سارة",
    )
    event = parse_event(raw(doc))
    assert (event.customer.email, event.customer.first_name) == ("zoë+loyalty@example.co.uk", "Zoë")
