from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.profile import Profile, fold
from tests.support.events import make_event
from tests.support.reference_profile import reference


def fold_all(events, profile=None) -> Profile:
    for event in events:
        profile = fold(profile, event).profile
    return profile


def test_fold_first_event_creates_profile_for_its_customer(event):
    profile = fold(None, event("points.earned", {"points": 5}, customer_id="c9")).profile
    assert profile.customer_id == "c9"
    assert profile.points.balance == 5


def test_fold_same_event_twice_counts_points_once(event):
    earned = event("points.earned", {"points": 50})
    once = fold(None, earned).profile
    again = fold(once, earned)
    assert again.applied is False
    assert again.profile == once
    assert again.profile.points.balance == 50


def test_fold_redeem_moves_points_to_spent_and_counts_reward(event):
    profile = fold_all(
        [
            event("points.earned", {"points": 150}, at=1),
            event(
                "points.redeemed",
                {"redemption_id": "r1", "code": "C1", "points": 100, "reward": {"name": "£10"}},
                at=2,
            ),
            event("reward.used", {"redemption_id": "r1", "code": "C1"}, at=3),
        ]
    )
    assert (profile.points.balance, profile.points.spent, profile.points.lifetime) == (50, 100, 150)
    assert (profile.rewards_claimed, profile.rewards_used) == (1, 1)
    assert profile.last_reward is not None
    assert profile.last_reward.code == "C1"


def test_fold_pending_points_do_not_count_as_balance(event):
    profile = fold(None, event("points.earned", {"points": 30, "pending": True})).profile
    assert (profile.points.balance, profile.points.pending) == (0, 30)


def test_fold_platform_balance_wins_over_arithmetic(event):
    profile = fold_all(
        [
            event("points.earned", {"points": 10}, at=1),
            event(
                "points.earned", {"points": 5, "balance": {"points": 500, "credits": "3.5"}}, at=2
            ),
        ]
    )
    assert profile.points.balance == 500
    assert profile.points.credits == "3.5"


def test_fold_change_arriving_after_a_snapshot_is_added_even_when_stamped_older(event):
    snapshot = event("points.earned", {"points": 5, "balance": {"points": 500}}, at=10)
    late = event("points.earned", {"points": 7}, at=5)
    profile = fold_all([snapshot, late])
    assert profile.points.balance == 507  # the snapshot was taken before this change reached us
    assert profile.points.lifetime == 12


def test_fold_change_arriving_before_a_newer_snapshot_is_accounted_for_by_it(event):
    change = event("points.earned", {"points": 7}, at=5)
    snapshot = event("points.earned", {"points": 5, "balance": {"points": 500}}, at=10)
    assert fold_all([change, snapshot]).points.balance == 500


def test_fold_late_tier_change_does_not_roll_tier_back(event):
    gold = event("tier.changed", {"tier": "Gold", "previous_tier": "Silver"}, at=10)
    silver = event("tier.changed", {"tier": "Silver", "previous_tier": "Bronze"}, at=5)
    assert fold_all([gold, silver]).tier.name == "Gold"
    assert fold_all([silver, gold]).tier.name == "Gold"


def test_fold_event_without_email_keeps_the_known_email(event):
    profile = fold_all(
        [
            event("customer.enrolled", {}, email="a@example.com", at=1),
            event("points.earned", {"points": 1}, at=2),
        ]
    )
    assert profile.email == "a@example.com"


def test_fold_profile_round_trips_through_table_json(event):
    profile = fold_all(
        [
            event("customer.enrolled", {"date_of_birth": "03-15"}, email="a@example.com"),
            event("tier.changed", {"tier": "Gold", "progress": "12.5"}, at=1),
        ]
    )
    assert Profile.from_json(profile.to_json()) == profile


# --- property: any interleaving with duplicates gives the reference model's profile ---------

EMAILS = ["a@example.com", "b@example.com", None]
TIERS = ["Bronze", "Silver", "Gold"]
KINDS = [
    "earn", "earn_snapshot", "pending", "approve", "redeem", "expire", "adjust",
    "adjust_snapshot", "tier", "expiring", "member_start", "member_cancel",
]  # fmt: skip


@st.composite
def histories(draw):
    count = draw(st.integers(min_value=1, max_value=25))
    events = []
    for n in range(count):
        at = draw(st.integers(min_value=0, max_value=20))  # collisions test the id tie-break
        kind = draw(st.sampled_from(KINDS))
        common = {"event_id": f"ev{n}", "at": at, "email": draw(st.sampled_from(EMAILS))}
        points = draw(st.integers(min_value=0, max_value=1000))
        snapshot = {"points": draw(st.integers(min_value=0, max_value=5000))}
        match kind:
            case "earn":
                event = make_event("points.earned", {"points": points}, **common)
            case "earn_snapshot":
                data = {"points": points, "balance": snapshot}
                event = make_event("points.earned", data, **common)
            case "pending":
                event = make_event("points.earned", {"points": points, "pending": True}, **common)
            case "approve":
                event = make_event("points.approved", {"points": points}, **common)
            case "redeem":
                data = {
                    "redemption_id": f"r{n}",
                    "code": "C",
                    "points": points,
                    "reward": {"name": "x"},
                }
                event = make_event("points.redeemed", data, **common)
            case "expire":
                event = make_event("points.expired", {"points": points}, **common)
            case "adjust":
                event = make_event("points.adjusted", {"points": points - 500}, **common)
            case "adjust_snapshot":
                data = {"points": points - 500, "balance": snapshot}
                event = make_event("points.adjusted", data, **common)
            case "tier":
                data = {"tier": draw(st.sampled_from(TIERS))}
                event = make_event("tier.changed", data, **common)
            case "expiring":
                data = {"points": points, "expires_at": "2027-01-01T00:00:00Z"}
                event = make_event("points.expiring", data, **common)
            case "member_start":
                event = make_event("membership.started", {"membership_tier_id": n}, **common)
            case _:
                data = {"cancellation_policy": "end_of_period"}
                event = make_event("membership.cancelled", data, **common)
        events.append(event)
    return events


def observed(profile: Profile):
    return {
        "balance": profile.points.balance,
        "pending": profile.points.pending,
        "lifetime": profile.points.lifetime,
        "spent": profile.points.spent,
        "rewards_claimed": profile.rewards_claimed,
        "email": profile.email,
        "tier": profile.tier.name,
        "expiring_points": profile.expiring_points,
        "membership_status": profile.membership_status,
        "membership_tier_id": profile.membership_tier_id,
    }


@settings(max_examples=400, deadline=None)
@given(data=st.data(), events=histories())
def test_fold_any_interleaving_with_duplicates_matches_reference(data, events):
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=10))
    stream = data.draw(st.permutations(events + duplicates))
    assert observed(fold_all(stream)) == reference(events, stream)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), events=histories())
def test_fold_redelivery_after_a_crash_changes_nothing(data, events):
    """A crash loses the table writes after the last commit; the events come again."""
    stream = data.draw(st.permutations(events))
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    committed = fold_all(stream[:cut])
    # Everything from some point before the cut is redelivered, in the same order.
    back = data.draw(st.integers(min_value=0, max_value=cut))
    assert observed(fold_all(stream[back:], committed)) == reference(events, stream)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), events=histories())
def test_fold_replaying_into_empty_state_is_deterministic(data, events):
    stream = data.draw(st.permutations(events))
    first, second = fold_all(stream), fold_all(list(stream))
    assert first == second
    # Another arrival order gives the same snapshot fields (the balance follows arrivals).
    other = fold_all(data.draw(st.permutations(events)))
    assert replace(other, recent_event_ids=(), points=first.points) == replace(
        first, recent_event_ids=()
    )


# A profile as the pydantic model wrote it (every kind of field set): stored profiles from
# before the plain-data profile must read back to the same document, byte for byte.
STORED = (
    '{"customer_id":"7294851236742","email":"sarah@example.com","first_name":"Zoë","last_'
    'name":null,"loyalty_status":"member","enrolled_at":"2026-03-01T08:15:00.250000+02:00'
    '","blocked":true,"referral_code":"R1","referral_url":"https://x/r/1","insights_segme'
    'nt":"At Risk","tags":["vip","a"],"date_of_birth":"03-15","points":{"balance":86,"pen'
    'ding":40,"spent":100,"lifetime":159,"credits":"3.10","base_points":77,"base_credits"'
    ':"3.10","base_as_of":"2026-11-28T09:00:08.000000Z|e8","deltas":[["2026-11-29T09:00:0'
    '9.000000Z|e9",9,"0"]]},"rewards_claimed":1,"rewards_used":0,"last_reward":{"name":"£'
    '10 off","code":"C1","expires_at":"2026-12-01T00:00:00Z"},"tier":{"name":"Gold","prev'
    'ious":"Silver","expires_at":"2027-01-01T00:00:00-05:00","progress":"12.5","next":nul'
    'l,"progress_to_next":"3","progress_to_renew":null,"forecast":null},"referrals_comple'
    'ted":0,"points_expire_at":"2026-12-24T10:00:00.000001Z","expiring_points":20,"member'
    'ship_status":"active","membership_tier_id":"m1","membership_source":"shop","membersh'
    'ip_started_at":"2026-11-01T00:00:00Z","membership_ends_at":null,"membership_cancella'
    'tion_policy":null,"as_of":{"email":"2026-11-29T09:00:09.000000Z|e9","loyalty_status"'
    ':"2026-11-20T09:00:00.000000Z|e0","enrolled_at":"2026-11-20T09:00:00.000000Z|e0","re'
    'ferral_code":"2026-11-20T09:00:00.000000Z|e0","referral_url":"2026-11-20T09:00:00.00'
    '0000Z|e0","date_of_birth":"2026-11-20T09:00:00.000000Z|e0","last_reward":"2026-11-23'
    'T09:00:03.000000Z|e3","tier":"2026-11-24T09:00:04.000000Z|e4","points_expire_at":"20'
    '26-11-25T09:00:05.000000Z|e5","expiring_points":"2026-11-25T09:00:05.000000Z|e5","me'
    'mbership_status":"2026-11-26T09:00:06.000000Z|e6","membership_tier_id":"2026-11-26T0'
    '9:00:06.000000Z|e6","membership_source":"2026-11-26T09:00:06.000000Z|e6","membership'
    '_started_at":"2026-11-26T09:00:06.000000Z|e6","membership_ends_at":"2026-11-26T09:00'
    ':06.000000Z|e6","membership_cancellation_policy":"2026-11-26T09:00:06.000000Z|e6","f'
    'irst_name":"2026-11-27T09:00:07.000000Z|e7","blocked":"2026-11-27T09:00:07.000000Z|e'
    '7","insights_segment":"2026-11-27T09:00:07.000000Z|e7","tags":"2026-11-27T09:00:07.0'
    '00000Z|e7"},"input_offset":9,"recent_event_ids":["e0","e1","e2","e3","e4","e5","e6",'
    '"e7","e8","e9"],"last_contact":{"@type":"contact","id":"7294851236742","properties":'
    '{"rivoPointsBalance":77,"x":1.5,"b":true}}}'
).encode()
# The fields added later (issue 13), as a complete document of today writes them.
STORED_NOW = (
    STORED.replace(b'"2026-12-01T00:00:00Z"}', b'"2026-12-01T00:00:00Z","used":false}')[:-1]
    + b',"schedule_fired":["2026-11-01T00:00:00Z|loyalty_birthday"],"lists":["1234"]}'
)


def test_profile_stored_document_reads_back_to_the_same_document():
    profile = Profile.from_bytes(STORED_NOW)
    expected = orjson.loads(STORED_NOW)
    # The ledger field added later takes its default: nothing was merged past a snapshot.
    expected["points"]["merged_as_of"] = ""
    assert profile.to_bytes() == orjson.dumps(expected)
    assert Profile.from_json(profile.to_json()) == profile
    assert profile.points.deltas == (("2026-11-29T09:00:09.000000Z|e9", 9, "0"),)
    assert profile.enrolled_at == datetime(2026, 3, 1, 6, 15, 0, 250000, tzinfo=UTC)


def test_profile_from_json_unknown_field_raises():
    with pytest.raises(ValueError, match="unknown fields"):
        Profile.from_json({"customer_id": "c1", "points_balance": 5})
    with pytest.raises(ValueError, match="no customer_id"):
        Profile.from_json({"email": "a@example.com"})


def test_profile_stored_before_the_schedule_fields_reads_with_their_defaults():
    profile = Profile.from_bytes(STORED)

    assert profile.schedule_fired == ()
    assert profile.lists == ()
    assert profile.last_reward is not None
    assert profile.last_reward.used is False
    assert orjson.loads(profile.to_bytes())["tier"] == orjson.loads(STORED)["tier"]
