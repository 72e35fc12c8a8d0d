"""Exact-once effect on state: a redelivered record changes nothing, however old it is.

The worker folds a partition in batches, writes the table after each batch and commits input
offsets later, so a crash can redeliver records the table already holds (any number of them)
or ones it does not. Checked against a reference that simply sums each distinct event once.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.profile import RECENT_EVENT_IDS, Profile, fold
from tests.support.events import make_event

BASE = 0  # event times in order, one second apart (seconds after the fixtures' T0)


def partition_log(seed: int, size: int):
    """One customer's partition: `size` events, some sent twice by the producer (new offset)."""
    rng = random.Random(seed)
    log = []
    for n in range(size):
        at = BASE + n
        if rng.random() < 0.15:
            data = {"redemption_id": f"r{n}", "code": "C", "points": rng.randint(1, 30),
                    "reward": {"name": "x"}}  # fmt: skip
            event = make_event("points.redeemed", data, event_id=f"e{n}", at=at)
        else:
            event = make_event(
                "points.earned", {"points": rng.randint(0, 50)}, event_id=f"e{n}", at=at
            )
        log.append(event)
        if rng.random() < 0.05:
            log.append(event)  # a producer retry: the same event at the next offset
    return log


def reference(log) -> dict[str, int]:
    distinct = {e.event_id: e for e in log}.values()
    earned = sum(e.data.points for e in distinct if e.type == "points.earned")
    spent = sum(e.data.points for e in distinct if e.type == "points.redeemed")
    return {"balance": earned - spent, "lifetime": earned, "spent": spent}


def observed(profile: Profile) -> dict[str, int]:
    return {
        "balance": profile.points.balance,
        "lifetime": profile.points.lifetime,
        "spent": profile.points.spent,
    }


def run_with_crashes(log, rng: random.Random, crashes: int) -> Profile | None:
    """Fold the log in batches; at random points crash and restart from the committed offset.

    A batch's table write happens before its offsets commit: a crash between the two leaves a
    table ahead of the committed offset, and the restart redelivers what the table holds.
    """
    table: Profile | None = None
    committed = 0
    position = 0
    while position < len(log):
        end = min(len(log), position + rng.randint(1, 400))
        profile = table
        for offset in range(position, end):
            profile = fold(profile, log[offset], offset=offset).profile
        moment = rng.random()
        if crashes and moment < 0.3:  # crash before the table write: the batch is lost
            crashes -= 1
            position = committed
            continue
        table = profile
        if crashes and moment < 0.6:  # crash after the table write, before the commit
            crashes -= 1
            position = committed
            continue
        committed = position = end
    return table


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), crashes=st.integers(0, 12))
def test_fold_thousands_of_events_with_crash_redeliveries_counts_each_once(seed, crashes):
    log = partition_log(seed, 3000)
    final = run_with_crashes(log, random.Random(seed), crashes)
    assert final is not None
    assert observed(final) == reference(log)
    first_seen = {}
    for offset, event in enumerate(log):
        first_seen.setdefault(event.event_id, offset)
    assert final.input_offset == max(first_seen.values()), "the last record applied"


def test_fold_redelivery_older_than_the_id_window_changes_nothing():
    log = partition_log(7, 10 * RECENT_EVENT_IDS)
    profile = None
    for offset, event in enumerate(log):
        profile = fold(profile, event, offset=offset).profile
    assert profile is not None
    for offset in range(len(log)):  # every record again, oldest first
        again = fold(profile, log[offset], offset=offset)
        assert not again.applied
        assert again.profile == profile


def test_fold_producer_duplicate_at_a_new_offset_applies_once():
    earn = make_event("points.earned", {"points": 10}, event_id="dup", at=BASE)
    once = fold(None, earn, offset=0).profile
    twice = fold(once, earn, offset=1)
    assert not twice.applied
    assert twice.profile.points.balance == 10
