"""Campaign triggers: which loyalty events fire which Ometria custom events.

See docs/architecture.md#campaign-triggers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stream.domain import triggers
from stream.domain.batching import plan_requests
from stream.domain.profile import Profile, fold
from stream.domain.triggers import TriggerConfig
from tests.support.events import T0, make_event

EMAIL = "sarah@example.com"
SOON = timedelta(minutes=1)


def fire(event, before: Profile | None = None, config=None, now=None) -> list[dict]:
    """Fold `event` into `before` and return the custom events it fires."""
    after = fold(before, event).profile
    return triggers.fire(
        event, before, after, config or TriggerConfig(), now or event.occurred_at + SOON
    ).records


def fire_one(event, **kwargs) -> dict:
    (record,) = fire(event, **kwargs)
    return record


def profile_of(*events) -> Profile:
    profile = None
    for event in events:
        profile = fold(profile, event).profile
    return profile


def tier_event(tier: str, previous: str | None = None, **data):
    fields = {"tier": tier, **data}
    if previous is not None:
        fields["previous_tier"] = previous
    return make_event("tier.changed", fields, email=EMAIL, at=3600)


def test_custom_events_points_earned_fires_record_with_documented_shape():
    event = make_event(
        "points.earned",
        {"points": 50, "action": "purchase"},
        email=EMAIL,
        customer_id="c7",
        event_id="evt-1",
    )

    assert fire(event) == [
        {
            "@type": "custom_event",
            "id": "c7:evt-1:loyalty_points_earned",
            "timestamp": "2026-11-21T10:00:00Z",
            "event_type": "loyalty_points_earned",
            "identity_email": EMAIL,
            "identity_account_id": "c7",
            "properties": {
                "points": 50,
                "pending": False,
                "action": "purchase",
                "points_balance": 50,
            },
        }
    ]


def test_custom_events_points_redeemed_fires_reward_claimed_with_reward_fields():
    before = profile_of(make_event("points.earned", {"points": 150}, email=EMAIL))
    event = make_event(
        "points.redeemed",
        {
            "redemption_id": "r1",
            "code": "SAVE10",
            "points": 100,
            "expires_at": "2026-12-31T23:59:00Z",
            "reward": {"id": "w1", "name": "£10 off", "reward_type": "voucher", "value": "10"},
        },
        email=EMAIL,
        at=60,
    )

    record = fire_one(event, before=before)

    assert record["event_type"] == "loyalty_reward_claimed"
    assert record["properties"] == {
        "reward_name": "£10 off",
        "reward_code": "SAVE10",
        "reward_value": "10",
        "reward_type": "voucher",
        "expires_at": "2026-12-31T23:59:00+00:00",
        "points_spent": 100,
        "points_balance": 50,
    }


def test_custom_events_reward_used_fires_with_code_redemption_and_order():
    event = make_event(
        "reward.used", {"redemption_id": "r1", "code": "SAVE10", "order_id": "o9"}, email=EMAIL
    )

    record = fire_one(event)

    assert record["event_type"] == "loyalty_reward_used"
    assert record["properties"] == {
        "reward_code": "SAVE10",
        "redemption_id": "r1",
        "order_id": "o9",
    }


def test_custom_events_tier_changed_up_fires_upgraded_with_tier_fields():
    event = tier_event(
        "Gold", "Silver", next_tier="Platinum", tier_expires_at="2027-11-21T00:00:00+01:00"
    )

    record = fire_one(event)

    assert record["event_type"] == "loyalty_tier_upgraded"
    assert record["properties"] == {
        "tier": "Gold",
        "previous_tier": "Silver",
        "next_tier": "Platinum",
        "tier_expires_at": "2027-11-21T00:00:00+01:00",
    }


def test_custom_events_referral_completed_fires_with_referral_count():
    before = profile_of(make_event("referral.completed", {}, email=EMAIL))
    event = make_event(
        "referral.completed",
        {"referred_customer_id": "c99", "reward": {"name": "500 points"}},
        email=EMAIL,
        at=60,
    )

    record = fire_one(event, before=before)

    assert record["event_type"] == "loyalty_referral_completed"
    assert record["properties"] == {
        "referred_customer_id": "c99",
        "reward_name": "500 points",
        "referrals_completed": 2,
    }


@pytest.mark.parametrize(
    "event_type", ["customer.enrolled", "customer.updated", "birthday.updated"]
)
def test_custom_events_event_without_rule_fires_nothing(event_type):
    data = {"date_of_birth": "04-12"} if event_type == "birthday.updated" else {}

    assert fire(make_event(event_type, data, email=EMAIL)) == []


@pytest.mark.parametrize(
    ("previous", "tier", "direction", "expected"),
    [
        ("Gold", "Silver", None, "loyalty_tier_downgraded"),
        ("Bronze", "Platinum", None, "loyalty_tier_upgraded"),
        ("Silver", "Gold", "down", "loyalty_tier_downgraded"),
        ("Gold", "Silver", "up", "loyalty_tier_upgraded"),
        ("Silver", "Diamond", "up", "loyalty_tier_upgraded"),
        ("silver", "GOLD", None, "loyalty_tier_upgraded"),
        ("PLATINUM", "bronze", None, "loyalty_tier_downgraded"),
        ("Silver", "Diamond", None, "loyalty_tier_changed"),
        ("Copper", "Gold", None, "loyalty_tier_changed"),
    ],
)
def test_custom_events_tier_change_direction_picks_event_type(previous, tier, direction, expected):
    extra = {"direction": direction} if direction else {}

    record = fire_one(tier_event(tier, previous, **extra))

    assert record["event_type"] == expected
    assert (record["properties"]["tier"], record["properties"]["previous_tier"]) == (
        tier,
        previous,
    )


def test_custom_events_custom_tier_order_decides_direction():
    config = TriggerConfig(tier_order=("Member", "Insider", "VIP"))

    assert fire_one(tier_event("VIP", "Insider"), config=config)["event_type"] == (
        "loyalty_tier_upgraded"
    )
    assert fire_one(tier_event("Gold", "Silver"), config=config)["event_type"] == (
        "loyalty_tier_changed"
    )


def test_custom_events_tier_change_without_known_previous_fires_nothing():
    before = profile_of(make_event("points.earned", {"points": 5}, email=EMAIL))

    assert fire(tier_event("Gold")) == []
    assert fire(tier_event("Gold"), before=before) == []


def test_custom_events_tier_unchanged_fires_nothing():
    assert fire(tier_event("Gold", "Gold", direction="up")) == []


def test_custom_events_tier_differing_only_in_case_fires_nothing():
    assert fire(tier_event("Gold", "gold")) == []


def test_custom_events_tier_change_previous_falls_back_to_profile_before():
    before = profile_of(make_event("tier.changed", {"tier": "Silver"}, email=EMAIL))

    record = fire_one(tier_event("Gold"), before=before)

    assert record["event_type"] == "loyalty_tier_upgraded"
    assert record["properties"]["previous_tier"] == "Silver"


def test_custom_events_event_previous_tier_wins_over_profile():
    before = profile_of(make_event("tier.changed", {"tier": "Bronze"}, email=EMAIL))

    record = fire_one(tier_event("Silver", "Platinum"), before=before)

    assert record["event_type"] == "loyalty_tier_downgraded"
    assert record["properties"]["previous_tier"] == "Platinum"


@pytest.mark.parametrize(
    ("age", "fires"),
    [
        (timedelta(0), True),
        (timedelta(hours=23, minutes=59), True),
        (timedelta(hours=24, seconds=1), False),
        (timedelta(days=400), False),
    ],
)
def test_custom_events_default_horizon_suppresses_old_events(age, fires):
    event = make_event("points.earned", {"points": 5}, email=EMAIL)

    records = fire(event, now=event.occurred_at + age)

    assert bool(records) is fires


def test_custom_events_configured_horizon_applies():
    config = TriggerConfig(horizon=timedelta(minutes=5))
    event = make_event("points.earned", {"points": 5}, email=EMAIL)

    assert fire(event, config=config, now=event.occurred_at + timedelta(minutes=4)) != []
    assert fire(event, config=config, now=event.occurred_at + timedelta(minutes=6)) == []


def test_custom_events_horizon_compares_instants_across_offsets():
    paris = timezone(timedelta(hours=2))
    event = make_event(
        "points.earned", {"points": 5}, email=EMAIL, at=datetime(2026, 11, 21, 12, 0, tzinfo=paris)
    )

    # 12:00+02:00 is 10:00Z, so 23 h later in UTC is still inside the horizon, 25 h is not.
    assert fire(event, now=T0 + timedelta(hours=23)) != []
    assert fire(event, now=T0 + timedelta(hours=25)) == []


def test_custom_events_no_email_known_fires_nothing():
    assert fire(make_event("points.earned", {"points": 5})) == []


def test_custom_events_email_from_profile_before_identifies_customer():
    before = profile_of(make_event("customer.enrolled", {}, email=EMAIL))

    record = fire_one(make_event("points.earned", {"points": 5}, at=60), before=before)

    assert record["identity_email"] == EMAIL


def test_custom_events_disabled_type_suppressed_others_fire():
    config = TriggerConfig(disabled=frozenset({"loyalty_points_earned", "loyalty_tier_upgraded"}))

    assert fire(make_event("points.earned", {"points": 5}, email=EMAIL), config=config) == []
    assert fire(tier_event("Gold", "Silver"), config=config) == []
    downgrade = fire_one(tier_event("Silver", "Gold"), config=config)
    assert downgrade["event_type"] == "loyalty_tier_downgraded"


def test_custom_events_same_event_twice_gives_same_deterministic_id():
    event = make_event("reward.used", {"redemption_id": "r1", "code": "C"}, email=EMAIL)
    profile = fold(None, event).profile
    now = event.occurred_at + SOON

    first = triggers.fire(event, None, profile, TriggerConfig(), now).records
    second = triggers.fire(event, None, profile, TriggerConfig(), now + timedelta(hours=1)).records

    assert first[0]["id"] == second[0]["id"] == f"c1:{event.event_id}:loyalty_reward_used"


def test_custom_events_long_string_property_truncated_to_512_chars():
    event = make_event("points.earned", {"points": 5, "action": "a"}, email=EMAIL)
    # The inbound contract caps names at 256 chars; bypass it to exercise the outbound cap.
    long = event.model_copy(update={"data": event.data.model_copy(update={"action": "x" * 600})})

    record = fire_one(long)

    assert record["properties"]["action"] == "x" * 512


def test_custom_events_none_properties_omitted():
    event = make_event("reward.used", {"redemption_id": "r1", "code": "C"}, email=EMAIL)

    record = fire_one(event)

    assert record["properties"] == {"reward_code": "C", "redemption_id": "r1"}
    assert "order_id" not in record["properties"]


def test_custom_events_two_customers_sharing_an_event_id_both_survive_batching():
    shared = {"points": 5, "action": "purchase"}
    first = make_event("points.earned", shared, email=EMAIL, customer_id="c1", event_id="evt-9")
    second = make_event(
        "points.earned", shared, email="other@example.com", customer_id="c2", event_id="evt-9"
    )

    plan = plan_requests([*fire(first), *fire(second)])

    (request,) = plan.requests
    assert [record["identity_account_id"] for record in request] == ["c1", "c2"]
    assert [record["id"] for record in request] == [
        "c1:evt-9:loyalty_points_earned",
        "c2:evt-9:loyalty_points_earned",
    ]
    assert plan.coalesced == 0
