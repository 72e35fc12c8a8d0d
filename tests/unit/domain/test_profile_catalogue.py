"""Folding the full event catalogue: approvals, expiry, adjustments, membership, numeric ids."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from stream.domain.events import parse_event
from stream.domain.profile import Profile, fold
from tests.support.events import event_doc, make_event

ENDS = "2026-12-21T10:00:00Z"


def fold_all(*events, profile: Profile | None = None) -> Profile:
    for event in events:
        profile = fold(profile, event).profile
    return profile


def comparable(profile: Profile) -> dict:
    """A profile minus the arrival-order log of applied event ids."""
    return {**profile.to_json(), "recent_event_ids": None}


# --- points ------------------------------------------------------------------------------------


def test_fold_points_approved_moves_pending_to_balance_and_lifetime():
    profile = fold_all(
        make_event("points.earned", {"points": 100}, at=1),
        make_event("points.earned", {"points": 40, "pending": True}, at=2),
        make_event("points.approved", {"points": 40}, at=3),
    )

    points = profile.points
    assert (points.balance, points.pending, points.lifetime) == (140, 0, 140)
    assert points.total == 140


def test_fold_points_approved_partially_leaves_rest_pending():
    profile = fold_all(
        make_event("points.earned", {"points": 40, "pending": True}, at=1),
        make_event("points.approved", {"points": 15}, at=2),
    )

    assert (profile.points.balance, profile.points.pending, profile.points.lifetime) == (15, 25, 15)


def test_fold_points_approved_with_balance_snapshot_takes_snapshot():
    profile = fold_all(
        make_event("points.earned", {"points": 40, "pending": True}, at=1),
        make_event("points.approved", {"points": 40, "balance": {"points": 90}}, at=2),
    )

    assert (profile.points.balance, profile.points.pending) == (90, 0)


def test_fold_pending_points_earned_balance_snapshot_wins_over_arithmetic():
    profile = fold_all(
        make_event("points.earned", {"points": 100}, at=1),
        make_event(
            "points.earned", {"points": 40, "pending": True, "balance": {"points": 120}}, at=2
        ),
    )

    assert (profile.points.balance, profile.points.pending) == (120, 40)


@pytest.mark.parametrize(
    ("event_type", "points", "balance"),
    [("points.expired", 30, 70), ("points.adjusted", -30, 70), ("points.adjusted", 25, 125)],
)
def test_fold_points_expired_or_adjusted_changes_balance_by_signed_points(
    event_type, points, balance
):
    profile = fold_all(
        make_event("points.earned", {"points": 100}, at=1),
        make_event(event_type, {"points": points, "reason": "policy"}, at=2),
    )

    assert profile.points.balance == balance
    assert (profile.points.lifetime, profile.points.spent) == (100, 0)


@pytest.mark.parametrize(
    ("event_type", "points"), [("points.expired", 30), ("points.adjusted", -30)]
)
def test_fold_points_expired_or_adjusted_balance_snapshot_wins_over_arithmetic(event_type, points):
    profile = fold_all(
        make_event("points.earned", {"points": 100}, at=1),
        make_event(event_type, {"points": points, "balance": {"points": 55}}, at=2),
    )

    assert profile.points.balance == 55


def test_fold_points_expired_snapshot_keeps_later_delta():
    expired = make_event("points.expired", {"points": 30, "balance": {"points": 55}}, at=2)
    later = make_event("points.earned", {"points": 10}, at=3)

    in_order = fold_all(make_event("points.earned", {"points": 100}, at=1), expired, later)
    late_snapshot = fold_all(later, expired)

    assert in_order.points.balance == late_snapshot.points.balance == 65


def test_fold_points_expiring_sets_expiry_and_points():
    profile = fold_all(
        make_event("points.expiring", {"points": 40, "expires_at": "2026-12-31T23:59:59Z"})
    )

    assert profile.points_expire_at == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert profile.expiring_points == 40
    assert profile.points.balance == 0


def test_fold_older_points_expiring_does_not_overwrite_newer():
    newer = make_event(
        "points.expiring", {"points": 40, "expires_at": "2027-01-31T00:00:00Z"}, at=2
    )
    older = make_event(
        "points.expiring", {"points": 90, "expires_at": "2026-12-31T00:00:00Z"}, at=1
    )

    profile = fold_all(newer, older)

    assert profile.points_expire_at == datetime(2027, 1, 31, tzinfo=UTC)
    assert profile.expiring_points == 40
    assert comparable(profile) == comparable(fold_all(older, newer))


# --- membership --------------------------------------------------------------------------------


def started(at: float = 1, **data):
    return make_event(
        "membership.started", {"membership_tier_id": 2229, "source": "rivo", **data}, at=at
    )


def cancelled(at: float = 2):
    data = {"membership_tier_id": 2229, "cancellation_policy": "end_of_period", "ends_at": ENDS}
    return make_event("membership.cancelled", data, at=at)


def test_fold_membership_started_then_cancelled_records_cancellation():
    profile = fold_all(started(), cancelled())

    assert profile.membership_status == "cancelled"
    assert profile.membership_tier_id == "2229"
    assert profile.membership_source == "rivo"
    assert profile.membership_ends_at == datetime(2026, 12, 21, 10, tzinfo=UTC)
    assert profile.membership_cancellation_policy == "end_of_period"
    assert profile.membership_started_at is not None


def test_fold_membership_cancelled_arriving_first_ends_in_same_profile():
    start, cancel = started(), cancelled()

    assert comparable(fold_all(cancel, start)) == comparable(fold_all(start, cancel))
    assert fold_all(cancel, start).membership_status == "cancelled"


def test_fold_membership_restarted_after_cancel_clears_end_and_policy():
    profile = fold_all(started(at=1), cancelled(at=2), started(at=3, membership_tier_id=3000))

    assert profile.membership_status == "active"
    assert profile.membership_tier_id == "3000"
    assert profile.membership_ends_at is None
    assert profile.membership_cancellation_policy is None


def test_fold_membership_started_uses_started_at_else_event_time():
    given = fold_all(started(started_at="2026-11-01T00:00:00Z"))
    implied = fold_all(started(at=5))

    assert given.membership_started_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert implied.membership_started_at == datetime(2026, 11, 21, 10, 0, 5, tzinfo=UTC)


# --- numeric ids and lenient shapes ------------------------------------------------------------


def test_fold_numeric_customer_and_membership_ids_become_strings():
    doc = event_doc("membership.started", {"membership_tier_id": 2229}, customer_id=123)

    profile = fold(None, parse_event(orjson.dumps(doc))).profile

    assert profile.customer_id == "123"
    assert profile.membership_tier_id == "2229"
    assert Profile.from_json(orjson.loads(orjson.dumps(profile.to_json()))) == profile


@pytest.mark.parametrize(("progress", "stored"), [(120.5, "120.5"), (120, "120"), ("7.25", "7.25")])
def test_fold_tier_changed_numeric_or_decimal_string_progress_stored_as_text(progress, stored):
    profile = fold_all(
        make_event("tier.changed", {"tier": "Gold", "progress": progress, "progress_to_next": 0.5})
    )

    assert profile.tier.progress == stored
    assert profile.tier.progress_to_next == "0.5"


def test_fold_referral_completed_reward_as_plain_string_counts_referral():
    event = make_event("referral.completed", {"referred_customer_id": 77, "reward": "£5 voucher"})

    profile = fold_all(event)

    assert event.data.reward is not None
    assert event.data.reward.name == "£5 voucher"
    assert event.data.referred_customer_id == "77"
    assert profile.referrals_completed == 1
