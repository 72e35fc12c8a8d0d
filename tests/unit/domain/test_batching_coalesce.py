"""coalesce: the newest contact per customer and each distinct custom event of a round."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from stream.domain.batching import coalesce
from stream.domain.records import VERSION_KEY, Version, with_version


def contact(cid: str, version: int, balance: int = 0, generation: int = 0) -> dict[str, Any]:
    record = {"@type": "contact", "@collection": "loyalty", "id": cid}
    return with_version({**record, "properties": {"balance": balance}}, version, generation)


def custom(event_id: str) -> dict[str, Any]:
    return {"@type": "custom_event", "id": event_id, "event_type": "loyalty_points_earned"}


def nothing_delivered(partition: int, cid: str) -> Version | None:
    return None


def test_a_newer_contact_waiting_in_the_round_wins_whatever_the_order():
    plan = coalesce([(0, contact("a", 7, 70)), (0, contact("a", 3, 30))], nothing_delivered)
    assert plan.records == [contact("a", 7, 70)]
    assert plan.versions == {(0, "a"): Version(0, 7)}
    assert (plan.superseded, plan.stale) == (1, 0)


def test_a_contact_older_than_the_one_delivered_is_never_sent():
    plan = coalesce(
        [(2, contact("a", 3))], lambda p, cid: Version(0, 5) if (p, cid) == (2, "a") else None
    )
    assert plan.records == []
    assert plan.stale == 1


def test_the_version_already_delivered_is_sent_again_as_backfill_does():
    plan = coalesce([(2, contact("a", 5, 55))], lambda p, cid: Version(0, 5))
    assert plan.records == [contact("a", 5, 55)]


def test_a_rebuilt_contact_of_a_new_generation_replaces_one_delivered_at_a_higher_offset():
    # After `replay --reset-state` with a mapping fix: the rebuilt profile's content last
    # changed at offset 1, the old one's at offset 5 (delivered as a plain offset).
    rebuilt = [(0, contact("a", 0, 10, generation=1)), (0, contact("a", 1, 15, generation=1))]
    plan = coalesce(rebuilt, lambda p, cid: Version(0, 5))
    assert plan.records == [contact("a", 1, 15, generation=1)]
    assert plan.versions == {(0, "a"): Version(1, 1)}
    assert plan.stale == 0


def test_within_a_generation_an_older_offset_is_still_stale():
    plan = coalesce([(0, contact("a", 3, generation=1))], lambda p, cid: Version(1, 5))
    assert (plan.records, plan.stale) == ([], 1)
    plan = coalesce([(0, contact("a", 9))], lambda p, cid: Version(1, 5))
    assert (plan.records, plan.stale) == ([], 1), "an old generation's contact, however late"


def test_every_distinct_custom_event_is_kept_and_repeats_of_one_id_are_one():
    plan = coalesce([(0, custom("x")), (1, custom("y")), (0, custom("x"))], nothing_delivered)
    assert sorted(r["id"] for r in plan.records) == ["x", "y"]
    assert plan.versions == {}


def test_a_contact_without_a_version_replaces_by_arrival_order():
    old = {**contact("a", 1), "properties": {"balance": 1}}
    del old[VERSION_KEY]
    new = {**old, "properties": {"balance": 2}}
    plan = coalesce([(0, old), (0, new)], lambda p, cid: Version(0, 9))
    assert plan.records == [new]


rounds = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from("abcd"), st.integers(0, 20)), max_size=40
)
delivered_maps = st.dictionaries(
    st.tuples(st.integers(0, 2), st.sampled_from("abcd")), st.integers(0, 20), max_size=8
)


@given(rounds, delivered_maps)
def test_each_customer_gets_its_newest_version_unless_something_newer_was_delivered(
    entries, delivered
):
    # Reference: per (partition, id), the highest version in the round (the last one seen of
    # that version), sent only when it is not below the version delivered.
    expected: dict[str, tuple[int, int]] = {}
    for n, (partition, cid, version) in enumerate(entries):
        floor = delivered.get((partition, cid), -1)
        if version < floor:
            continue
        held = expected.get(cid)
        if held is None or version >= entries[held[1]][2]:
            expected[cid] = (version, n)
    versions = {key: Version(0, version) for key, version in delivered.items()}
    records = [
        (partition, {**contact(cid, version), "seen": n})
        for n, (partition, cid, version) in enumerate(entries)
    ]
    plan = coalesce(records, lambda p, cid: versions.get((p, cid)))
    got = {r["id"]: (r[VERSION_KEY], r["seen"]) for r in plan.records}
    assert got == expected
    assert plan.stale == sum(1 for p, cid, v in entries if v < delivered.get((p, cid), -1))
