"""The balance rule (README "Balances") over thousands of events per customer, in any order.

The reference model below states the rule directly over the whole history: the newest snapshot
by stamp, plus every change it does not account for (one stamped after it, or one that arrived
after it). It keeps every event; the fold keeps a bounded ledger.
"""

from __future__ import annotations

import random

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stream.domain.events import LoyaltyEvent
from stream.domain.profile import MAX_DELTAS, Profile, fold, stamp_of
from tests.support.events import make_event

SIGN = {
    "points.earned": 1,
    "points.approved": 1,
    "points.adjusted": 1,
    "points.redeemed": -1,
    "points.expired": -1,
}


def _event(rng: random.Random, n: int, at: float) -> LoyaltyEvent:
    points = rng.randint(0, 500)
    snapshot = {"balance": {"points": rng.randint(0, 100_000)}} if rng.random() < 0.08 else {}
    kind = rng.choice(["earn", "earn", "pending", "approve", "redeem", "expire", "adjust"])
    common = {"event_id": f"ev{n}", "at": at}
    match kind:
        case "earn":
            return make_event("points.earned", {"points": points, **snapshot}, **common)
        case "pending":
            data = {"points": points, "pending": True, **snapshot}
            return make_event("points.earned", data, **common)
        case "approve":
            return make_event("points.approved", {"points": points, **snapshot}, **common)
        case "redeem":
            data = {
                "redemption_id": f"r{n}",
                "code": "C",
                "points": points,
                "reward": {"name": "x"},
            }
            return make_event("points.redeemed", {**data, **snapshot}, **common)
        case "expire":
            return make_event("points.expired", {"points": points, **snapshot}, **common)
        case _:
            return make_event("points.adjusted", {"points": points - 250, **snapshot}, **common)


def history(seed: int, count: int) -> tuple[list[LoyaltyEvent], list[LoyaltyEvent]]:
    """Distinct events and the stream as it arrives: shuffled, some re-sent soon after."""
    rng = random.Random(seed)
    # Times collide now and then, so the event id's tie-break is exercised too.
    events = [
        _event(rng, n, rng.randrange(count // 2) + 0.5 * rng.randrange(2)) for n in range(count)
    ]
    arrived = events[:]
    rng.shuffle(arrived)
    stream: list[LoyaltyEvent] = []
    resend: dict[int, list[LoyaltyEvent]] = {}
    for position, event in enumerate(arrived):
        stream.append(event)
        stream.extend(resend.pop(position, []))
        if rng.random() < 0.03:  # a producer's retry, within the customer's recent events
            resend.setdefault(position + rng.randint(1, 20), []).append(event)
    return events, stream


def _snapshot(event: LoyaltyEvent) -> int | None:
    balance = getattr(event.data, "balance", None)
    return None if balance is None else balance.points


def _change(event: LoyaltyEvent) -> int:
    if getattr(event.data, "pending", False):
        return 0
    return SIGN[event.type] * event.data.points


def expected(stream: list[LoyaltyEvent]) -> dict[str, int]:
    first: dict[str, LoyaltyEvent] = {}
    for event in stream:
        first.setdefault(event.event_id, event)
    arrived = list(first.values())
    snapshots = [(stamp_of(e), n) for n, e in enumerate(arrived) if _snapshot(e) is not None]
    balance = sum(_change(e) for e in arrived)
    if snapshots:
        newest_stamp, at = max(snapshots)
        newest = arrived[at]
        balance = _snapshot(newest) or 0
        for n, event in enumerate(arrived):
            if n != at and (stamp_of(event) > newest_stamp or n > at):
                balance += _change(event)
    earned = [e for e in arrived if e.type == "points.earned"]
    approved = sum(e.data.points for e in arrived if e.type == "points.approved")
    return {
        "balance": balance,
        "lifetime": sum(e.data.points for e in earned if not e.data.pending) + approved,
        "spent": sum(e.data.points for e in arrived if e.type == "points.redeemed"),
    }


def ledger_fits(stream: list[LoyaltyEvent]) -> bool:
    """The rule is exact while no snapshot arrives after more than MAX_DELTAS changes newer
    than the snapshot before it (beyond that the oldest changes are merged, README)."""
    seen: dict[str, LoyaltyEvent] = {}
    newest = ""
    newer_changes = 0
    for event in stream:
        if event.event_id in seen:
            continue
        seen[event.event_id] = event
        stamp = stamp_of(event)
        if _snapshot(event) is not None and stamp > newest:
            if newer_changes > MAX_DELTAS:
                return False
            newest = stamp
            newer_changes = sum(
                1
                for other in seen.values()
                if stamp_of(other) > newest and not getattr(other.data, "pending", False)
            )
        elif stamp > newest and not getattr(event.data, "pending", False):
            newer_changes += 1
    return True


def fold_stream(stream: list[LoyaltyEvent]) -> Profile:
    profile = None
    for event in stream:
        profile = fold(profile, event).profile
    assert profile is not None
    return profile


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    count=st.integers(min_value=1000, max_value=3000),
)
def test_balance_of_thousands_of_events_in_any_order_follows_the_rule(seed, count):
    _, stream = history(seed, count)
    assume(ledger_fits(stream))
    points = fold_stream(stream).points
    assert {
        "balance": points.balance,
        "lifetime": points.lifetime,
        "spent": points.spent,
    } == expected(stream)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_balance_without_snapshots_is_the_sum_of_changes_whatever_the_order(seed):
    rng = random.Random(seed)
    events = [
        make_event("points.earned", {"points": rng.randint(0, 50)}, at=rng.randrange(5000))
        for _ in range(2000)
    ]
    rng.shuffle(events)
    assert fold_stream(events).points.balance == sum(e.data.points for e in events)


def test_snapshot_older_than_a_merged_change_counts_as_a_change():
    newer = [make_event("points.earned", {"points": 1}, at=100 + n) for n in range(MAX_DELTAS + 1)]
    late_snapshot = make_event("points.adjusted", {"points": 5, "balance": {"points": 9999}}, at=50)
    points = fold_stream([*newer, late_snapshot]).points
    assert points.balance == MAX_DELTAS + 1 + 5


def test_duplicate_within_the_recent_window_counts_once():
    earned = make_event("points.earned", {"points": 40}, at=1)
    others = [make_event("points.earned", {"points": 1}, at=2 + n) for n in range(20)]
    assert fold_stream([earned, *others, earned]).points.balance == 60
