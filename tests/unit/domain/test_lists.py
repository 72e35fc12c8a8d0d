"""Ometria list membership: changes only, and none lost when the pusher coalesces contacts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.batching import coalesce
from stream.domain.lists import ADD, REMOVE, carry_lists, with_changes
from stream.domain.mapping import parse_mapping
from stream.domain.records import VERSION_KEY
from stream.errors import MappingError

LIST_IDS = ("1", "2", "3", "4")
memberships = st.lists(st.sets(st.sampled_from(LIST_IDS)), min_size=1, max_size=8)


def contact(version: int, old: set[str], new: set[str]) -> dict[str, Any]:
    record = {"@type": "contact", "@collection": "loyalty", "id": "a", VERSION_KEY: version}
    return with_changes(record, tuple(sorted(old)), tuple(sorted(new)))


def applied(start: set[str], record: dict[str, Any]) -> set[str]:
    """Reference: what Ometria's lists hold after a contact's list changes."""
    return (start - set(record.get(REMOVE, []))) | set(record.get(ADD, []))


def test_unchanged_membership_adds_no_list_keys():
    record = contact(1, {"1"}, {"1"})

    assert ADD not in record
    assert REMOVE not in record


@given(start=st.sets(st.sampled_from(LIST_IDS)), steps=memberships)
def test_coalesced_contacts_leave_the_lists_as_sending_each_would(start, steps):
    records, previous = [], start
    for version, now in enumerate(steps):
        records.append(contact(version, previous, now))
        previous = now

    one_by_one = start
    for record in records:
        one_by_one = applied(one_by_one, record)
    plan = coalesce([(0, r) for r in records], lambda p, cid: None)
    (sent,) = plan.records

    assert one_by_one == steps[-1]
    assert applied(start, sent) == steps[-1]
    assert sent[VERSION_KEY] == len(steps) - 1


def test_a_newer_contact_arriving_first_keeps_the_older_ones_list_changes():
    older = contact(3, set(), {"1"})
    newer = contact(7, set(), set())

    plan = coalesce([(0, newer), (0, older)], lambda p, cid: None)

    assert plan.records == [{**newer, ADD: ["1"]}]


def test_carry_lists_lets_the_newer_change_win():
    older = {ADD: ["1"], REMOVE: ["2"]}
    newer = {"id": "a", ADD: ["2"], REMOVE: ["1"]}

    assert carry_lists(older, newer) == {"id": "a", ADD: ["2"], REMOVE: ["1"]}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"id": "1", "condition": "after.tier.nme == 'Gold'"}], "no field 'nme'"),
        ([{"id": "1", "condition": "event.type == 'x'"}], "unknown variable 'event'"),
        ([{"id": "1", "condition": "true"}, {"id": "1", "condition": "true"}], "declared twice"),
    ],
)
def test_list_mistakes_stop_start_up_naming_the_list(entries, message):
    with pytest.raises(MappingError) as caught:
        parse_mapping("my.toml", {"extends": "rivo", "list": entries})

    assert message in str(caught.value)
    assert "[[list]] #" in str(caught.value)
