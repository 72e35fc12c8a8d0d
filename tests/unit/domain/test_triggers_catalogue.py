"""Trigger rules of the full catalogue: membership cancelled, points expiring, reward available."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from stream.domain.profile import fold
from stream.domain.triggers import RewardCost, TriggerConfig, fire
from tests.support.events import make_event

EMAIL = "sarah@example.com"
SOON = timedelta(minutes=1)
FIVE_OFF = TriggerConfig(rewards=(RewardCost("£5 off", 500),))


def fired(*events, config: TriggerConfig = FIVE_OFF, age: timedelta = SOON) -> list[list[dict]]:
    """Fold the events in order; the custom events each one fires, `age` after it happened."""
    profile, out = None, []
    for event in events:
        after = fold(profile, event).profile
        out.append(fire(event, profile, after, config, event.occurred_at + age).records)
        profile = after
    return out


def available(records: list[dict]) -> list[dict]:
    return [r for r in records if r["event_type"] == "loyalty_reward_available"]


def earn(points: int, at: float, **data):
    return make_event("points.earned", {"points": points, **data}, email=EMAIL, at=at)


def redeem(points: int, at: float):
    data = {"redemption_id": f"r{at}", "code": "C", "points": points, "reward": {"name": "x"}}
    return make_event("points.redeemed", data, email=EMAIL, at=at)


# --- membership.cancelled ----------------------------------------------------------------------


def test_custom_events_membership_cancelled_fires_with_membership_fields():
    event = make_event(
        "membership.cancelled",
        {
            "membership_tier_id": 2229,
            "cancellation_policy": "end_of_period",
            "ends_at": "2026-12-21T10:00:00Z",
        },
        email=EMAIL,
        customer_id="c7",
        event_id="m-1",
    )

    ((record,),) = fired(event, config=TriggerConfig())

    assert {k: v for k, v in record.items() if k != "properties"} == {
        "@type": "custom_event",
        "id": "c7:m-1:loyalty_membership_cancelled",
        "timestamp": "2026-11-21T10:00:00Z",
        "event_type": "loyalty_membership_cancelled",
        "identity_email": EMAIL,
        "identity_account_id": "c7",
    }
    properties = record["properties"]
    assert set(properties) == {"membership_tier_id", "cancellation_policy", "ends_at"}
    assert properties["membership_tier_id"] == "2229"
    assert properties["cancellation_policy"] == "end_of_period"
    assert datetime.fromisoformat(properties["ends_at"]) == datetime(2026, 12, 21, 10, tzinfo=UTC)


def test_custom_events_membership_cancelled_without_details_fires_without_properties():
    event = make_event("membership.cancelled", {}, email=EMAIL)

    ((record,),) = fired(event, config=TriggerConfig())

    assert record["event_type"] == "loyalty_membership_cancelled"
    assert record["properties"] == {}


def test_custom_events_membership_started_fires_nothing():
    event = make_event("membership.started", {"membership_tier_id": "t1"}, email=EMAIL)

    assert fired(event, config=TriggerConfig()) == [[]]


# --- points.expiring ---------------------------------------------------------------------------


def test_custom_events_points_expiring_fires_with_points_expiry_and_balance():
    expiring = make_event(
        "points.expiring",
        {"points": 40, "expires_at": "2026-12-31T23:59:59Z"},
        email=EMAIL,
        at=60,
        event_id="x-1",
    )

    _, (record,) = fired(earn(100, at=0), expiring, config=TriggerConfig())

    assert record["id"] == "c1:x-1:loyalty_points_expiring"
    assert record["event_type"] == "loyalty_points_expiring"
    properties = record["properties"]
    assert set(properties) == {"points", "expires_at", "points_balance"}
    assert (properties["points"], properties["points_balance"]) == (40, 100)
    assert datetime.fromisoformat(properties["expires_at"]) == datetime(
        2026, 12, 31, 23, 59, 59, tzinfo=UTC
    )


def test_custom_events_points_expiring_past_horizon_fires_nothing():
    expiring = make_event(
        "points.expiring", {"points": 40, "expires_at": "2026-12-31T23:59:59Z"}, email=EMAIL
    )

    assert fired(expiring, config=TriggerConfig(), age=timedelta(hours=25)) == [[]]


# --- loyalty_reward_available ------------------------------------------------------------------


def test_custom_events_balance_crossing_reward_cost_upwards_fires_once():
    crossing = make_event("points.earned", {"points": 200}, email=EMAIL, at=2, event_id="ev-7")

    _, second = fired(earn(400, at=1), crossing)

    (record,) = available(second)
    # readable name, then a digest of the exact name so '£5 off' and '$5 off' differ
    assert re.fullmatch(r"c1:ev-7:loyalty_reward_available:5-off-[0-9a-f]{8}", record["id"])
    assert record["timestamp"] == "2026-11-21T10:00:02Z"
    assert record["identity_email"] == EMAIL
    assert record["properties"] == {
        "reward_name": "£5 off",
        "reward_points": 500,
        "points_balance": 600,
    }


def test_custom_events_balance_reaching_exact_cost_fires():
    _, second = fired(earn(499, at=1), earn(1, at=2))

    assert len(available(second)) == 1


def test_custom_events_first_event_crossing_cost_fires_for_new_customer():
    (first,) = fired(earn(500, at=1))

    assert len(available(first)) == 1


def test_custom_events_balance_staying_above_cost_does_not_fire_again():
    outcome = fired(earn(600, at=1), earn(100, at=2), earn(50, at=3))

    assert [len(available(records)) for records in outcome] == [1, 0, 0]


def test_custom_events_balance_falling_below_and_crossing_again_fires_again():
    outcome = fired(earn(600, at=1), redeem(300, at=2), earn(250, at=3))

    assert [len(available(records)) for records in outcome] == [1, 0, 1]
    assert available(outcome[2])[0]["properties"]["points_balance"] == 550


@pytest.mark.parametrize(
    "falling",
    [
        redeem(200, at=2),
        make_event("points.expired", {"points": 200}, email=EMAIL, at=2),
        make_event("points.adjusted", {"points": -200}, email=EMAIL, at=2),
        make_event("points.adjusted", {"points": 0, "balance": {"points": 100}}, email=EMAIL, at=2),
    ],
    ids=["redeemed", "expired", "adjusted", "snapshot"],
)
def test_custom_events_downward_crossing_never_fires(falling):
    outcome = fired(earn(600, at=1), falling)

    assert available(outcome[1]) == []


def test_custom_events_balance_snapshot_crossing_cost_fires():
    snapshot = make_event(
        "points.adjusted", {"points": 0, "balance": {"points": 800}}, email=EMAIL, at=2
    )

    _, second = fired(earn(100, at=1), snapshot)

    (record,) = available(second)
    assert record["properties"]["points_balance"] == 800


def test_custom_events_pending_points_fire_only_when_approved():
    approved = make_event("points.approved", {"points": 300}, email=EMAIL, at=3)

    outcome = fired(earn(300, at=1), earn(300, at=2, pending=True), approved)

    assert [len(available(records)) for records in outcome] == [0, 0, 1]


def test_custom_events_one_event_crossing_several_costs_fires_one_each():
    config = TriggerConfig(
        rewards=(
            RewardCost("£5 off", 500),
            RewardCost("£10 off", 1000),
            RewardCost("£20 off", 2000),
        )
    )
    event = make_event("points.earned", {"points": 1200}, email=EMAIL, at=2, event_id="ev-8")

    _, second = fired(earn(100, at=1), event, config=config)

    records = available(second)
    ids = sorted(r["id"] for r in records)
    assert len(ids) == 2
    assert re.fullmatch(r"c1:ev-8:loyalty_reward_available:10-off-[0-9a-f]{8}", ids[0])
    assert re.fullmatch(r"c1:ev-8:loyalty_reward_available:5-off-[0-9a-f]{8}", ids[1])
    assert sorted(r["properties"]["reward_points"] for r in records) == [500, 1000]


def test_custom_events_reward_crossing_beyond_horizon_fires_nothing():
    outcome = fired(earn(400, at=1), earn(200, at=2), age=timedelta(hours=25))

    assert outcome == [[], []]


def test_custom_events_reward_crossing_without_email_fires_nothing():
    outcome = fired(make_event("points.earned", {"points": 600}))

    assert outcome == [[]]


def test_custom_events_reward_available_disabled_suppresses_it_points_earned_fires():
    config = TriggerConfig(
        rewards=FIVE_OFF.rewards, disabled=frozenset({"loyalty_reward_available"})
    )

    (records,) = fired(earn(600, at=1), config=config)

    assert [r["event_type"] for r in records] == ["loyalty_points_earned"]


def test_custom_events_no_rewards_configured_never_fires_reward_available():
    (records,) = fired(earn(5000, at=1), config=TriggerConfig())

    assert available(records) == []


def test_custom_events_distinct_reward_names_crossed_together_get_distinct_ids():
    config = TriggerConfig(rewards=(RewardCost("£5 off", 500), RewardCost("$5 off", 600)))

    (records,) = fired(earn(700, at=1), config=config)

    ids = [r["id"] for r in available(records)]
    assert len(ids) == 2
    assert len(set(ids)) == 2
