"""Campaigns fire only when they should; what is held back is reported by reason."""

from __future__ import annotations

from datetime import timedelta

from stream.domain.mapping import load_preset
from stream.domain.profile import Profile, fold
from stream.domain.sync import SyncRules, apply_event
from stream.domain.triggers import RewardCost, TriggerConfig, fire
from tests.support.events import T0, make_event

EMAIL = "sarah@example.com"
CONFIG = TriggerConfig()


def firing(event, before: Profile | None = None, now=None, config=CONFIG):
    after = fold(before, event).profile
    return fire(event, before, after, config, now or event.occurred_at + timedelta(minutes=1))


def test_recent_event_fires_and_holds_nothing_back():
    result = firing(make_event("points.earned", {"points": 5}, email=EMAIL))
    assert [r["event_type"] for r in result.records] == ["loyalty_points_earned"]
    assert result.suppressed == ()


def test_event_older_than_the_horizon_is_held_back_as_horizon():
    event = make_event("points.earned", {"points": 5}, email=EMAIL)
    result = firing(event, now=event.occurred_at + timedelta(hours=25))
    assert (result.records, result.suppressed) == ([], ("horizon",))


def test_event_beyond_the_future_skew_is_held_back_as_horizon():
    event = make_event("points.earned", {"points": 5}, email=EMAIL)
    result = firing(event, now=event.occurred_at - timedelta(minutes=6))
    assert (result.records, result.suppressed) == ([], ("horizon",))


def test_event_just_inside_the_future_skew_fires():
    event = make_event("points.earned", {"points": 5}, email=EMAIL)
    assert len(firing(event, now=event.occurred_at - timedelta(minutes=4)).records) == 1


def test_late_tier_event_is_held_back_as_stale():
    before = fold(None, make_event("tier.changed", {"tier": "Gold"}, email=EMAIL, at=10)).profile
    late = make_event("tier.changed", {"tier": "Bronze", "previous_tier": "Silver"}, at=5)
    result = firing(late, before, now=T0)
    assert (result.records, result.suppressed) == ([], ("stale",))


def test_newer_tier_event_still_fires():
    before = fold(None, make_event("tier.changed", {"tier": "Gold"}, email=EMAIL, at=5)).profile
    newer = make_event("tier.changed", {"tier": "Silver"}, at=10)
    (record,) = firing(newer, before, now=T0).records
    assert record["event_type"] == "loyalty_tier_downgraded"


def test_customer_without_email_is_held_back_as_no_email():
    config = TriggerConfig(rewards=(RewardCost("£5 off", 5),))
    result = firing(make_event("points.earned", {"points": 5}), config=config)
    assert (result.records, result.suppressed) == ([], ("no_email", "no_email"))


def test_event_that_fires_nothing_reports_nothing():
    result = firing(
        make_event("customer.updated", {"first_name": "Sue"}), now=T0 + timedelta(days=9)
    )
    assert (result.records, result.suppressed) == ([], ())


def test_duplicate_event_fires_nothing_again():
    rules = SyncRules(mapping=load_preset("rivo"), collection="loyalty", triggers=CONFIG)
    event = make_event("points.earned", {"points": 5}, email=EMAIL)
    now = event.occurred_at + timedelta(minutes=1)
    first = apply_event(None, event, rules, now)
    again = apply_event(first.profile, event, rules, now)
    assert len(first.records) == 1
    assert (again.applied, again.records, again.suppressed) == (False, (), ())


def test_apply_event_passes_the_reasons_on():
    rules = SyncRules(mapping=load_preset("rivo"), collection="loyalty", triggers=CONFIG)
    event = make_event("points.earned", {"points": 5}, email=EMAIL)
    outcome = apply_event(None, event, rules, event.occurred_at + timedelta(days=2))
    assert outcome.suppressed == ("horizon",)
