"""A built-in rule's options are checked next to the rules (stream.domain.triggers)."""

from __future__ import annotations

import pytest

from stream.domain.triggers import RULE_PROPERTIES, TriggerOptionsError, parse_options


def test_options_keep_the_chosen_properties_and_compile_the_condition():
    options = parse_options(
        "loyalty_points_earned",
        event_type="points_in",
        properties=["points", "action"],
        condition="event.data.points > 10",
    )
    assert options.event_type == "points_in"
    assert options.properties == frozenset({"points", "action"})
    assert options.condition is not None


def test_no_properties_chosen_means_all_of_the_rule_s_properties():
    assert parse_options("loyalty_points_earned").properties is None


def test_an_unknown_rule_is_refused_with_the_known_ones():
    with pytest.raises(TriggerOptionsError, match="unknown rule; use one of loyalty_points_earned"):
        parse_options("loyalty_points_won")


def test_a_property_the_rule_lacks_is_refused_with_the_ones_it_has():
    with pytest.raises(TriggerOptionsError) as refused:
        parse_options("loyalty_reward_used", properties=["points"])
    assert "has no properties ['points']" in str(refused.value)
    assert ", ".join(RULE_PROPERTIES["loyalty_reward_used"]) in str(refused.value)


def test_a_condition_over_a_field_the_rule_s_events_lack_is_placed_at_the_condition():
    with pytest.raises(TriggerOptionsError) as refused:
        parse_options("loyalty_points_earned", condition="event.data.no_such_field > 1")
    assert refused.value.at == ", condition 'event.data.no_such_field > 1'"
