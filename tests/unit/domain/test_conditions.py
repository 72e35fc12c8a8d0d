"""CEL conditions on campaign rules: checked at start-up, evaluated over event and profiles."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from stream.domain.conditions import (
    ConditionError,
    Variables,
    _value,
    check,
    compile_condition,
    value_of,
)
from stream.domain.mapping import parse_mapping
from stream.domain.profile import Profile, fold
from stream.domain.triggers import TriggerConfig, TriggerOptions, fire
from stream.errors import MappingError
from tests.support.events import make_event

EMAIL = "sarah@example.com"
GOLD_NEWLY = 'after.tier.name == "Gold" && before.tier.name != "Gold"'


def profile_of(*events) -> Profile | None:
    profile = None
    for event in events:
        profile = fold(profile, event).profile
    return profile


def fired_types(event, before, options) -> list[str]:
    after = fold(before, event).profile
    config = TriggerConfig(options=options)
    records = fire(event, before, after, config, event.occurred_at + timedelta(minutes=1)).records
    return [record["event_type"] for record in records]


def tier(name: str, at: float, previous: str | None = None):
    data = {"tier": name} | ({"previous_tier": previous} if previous else {})
    return make_event("tier.changed", data, email=EMAIL, at=at)


def test_condition_on_tier_fires_only_when_the_tier_becomes_gold():
    options = {"loyalty_tier_upgraded": TriggerOptions(condition=compile_condition(GOLD_NEWLY))}
    silver = profile_of(tier("Silver", 0))
    gold = profile_of(tier("Silver", 0), tier("Gold", 10))

    assert fired_types(tier("Gold", 20), silver, options) == ["loyalty_tier_upgraded"]
    assert fired_types(tier("Platinum", 20), gold, options) == []
    assert fired_types(tier("Gold", 20, previous="Silver"), None, options) == [
        "loyalty_tier_upgraded"
    ]


def test_condition_on_event_data_compares_the_claimed_reward_value():
    condition = compile_condition(
        "double(event.data.reward.value) > 20.0", event_types=["points.redeemed"]
    )
    options = {"loyalty_reward_claimed": TriggerOptions(condition=condition)}

    def claim(value: str):
        data = {"redemption_id": "r1", "code": "C1", "points": 10,
                "reward": {"name": "off", "value": value}}  # fmt: skip
        return make_event("points.redeemed", data, email=EMAIL)

    assert fired_types(claim("25.00"), None, options) == ["loyalty_reward_claimed"]
    assert fired_types(claim("20.00"), None, options) == []


def test_condition_reads_decimal_profile_amounts_as_numbers():
    condition = compile_condition("after.tier.progress_to_next <= 100.0")
    near = profile_of(make_event("tier.changed", {"tier": "Silver", "progress_to_next": "99.5"}))
    far = profile_of(make_event("tier.changed", {"tier": "Silver", "progress_to_next": "250"}))
    now = near.enrolled_at  # unused by the expression

    assert check(condition, Variables(None, None, near, now))
    assert not check(condition, Variables(None, None, far, now))


def test_condition_that_cannot_be_evaluated_does_not_hold():
    condition = compile_condition('after.last_reward.name == "x"')
    bare = Profile(customer_id="c1")

    assert not check(condition, Variables(None, None, bare, None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('after.tier.nme == "Gold"', "after.tier has no field 'nme'"),
        ("after.points.balanse > 1", "after.points has no field 'balanse'"),
        ("aftr.tier.name == 'Gold'", "unknown variable 'aftr'"),
        ("after.points.balance.x > 1", "after.points.balance is a value"),
        ("after.as_of == {}", "after has no field 'as_of'"),  # bookkeeping is not data
        ("after.tier.name ==", "does not compile"),
        ("now.day > 1", "now is a timestamp"),
    ],
)
def test_bad_expression_is_refused_naming_the_field(source, message):
    with pytest.raises(ConditionError, match=message):
        compile_condition(source)


def test_event_data_field_must_exist_on_every_event_type_the_rule_fires_for():
    compile_condition("event.data.points > 20", event_types=["points.earned"])

    with pytest.raises(ConditionError, match=re.escape("does not exist on tier.changed")):
        compile_condition("event.data.points > 20", event_types=["points.earned", "tier.changed"])
    with pytest.raises(ConditionError, match=re.escape("event.data has no field 'pionts'")):
        compile_condition("event.data.pionts > 20", event_types=["points.earned"])


def test_macro_variables_and_method_calls_are_not_fields():
    condition = compile_condition('after.tags.exists(t, t == "vip") && after.email.endsWith("@x")')
    vip = Profile(customer_id="c1", email="a@x", tags=("vip",))
    plain = Profile(customer_id="c1", email="a@x", tags=("new",))

    assert check(condition, Variables(None, None, vip, None))  # type: ignore[arg-type]
    assert not check(condition, Variables(None, None, plain, None))  # type: ignore[arg-type]


def test_mapping_with_a_typo_in_a_condition_names_rule_expression_and_field():
    doc = {
        "extends": "rivo",
        "triggers": {"loyalty_tier_upgraded": {"condition": 'after.tier.nme == "Gold"'}},
    }

    with pytest.raises(MappingError) as caught:
        parse_mapping("my.toml", doc)

    message = str(caught.value)
    assert "[triggers.loyalty_tier_upgraded]" in message
    assert 'after.tier.nme == "Gold"' in message
    assert "no field 'nme'" in message


def test_mapping_condition_on_event_data_is_checked_against_the_rule_event_type():
    doc = {
        "extends": "rivo",
        "triggers": {"loyalty_points_earned": {"condition": "event.data.tier == 'x'"}},
    }

    with pytest.raises(MappingError, match=re.escape("event.data has no field 'tier'")):
        parse_mapping("my.toml", doc)


def declared_doc(**rule):
    return {"extends": "rivo", "rules": {"loyalty_vip_welcome": {"on": ["tier.changed"], **rule}}}


def test_declared_rule_is_parsed_with_its_condition_and_properties():
    doc = declared_doc(
        condition='after.tier.name == "Platinum"', properties={"t": "after.tier.name"}
    )

    (rule,) = parse_mapping("my.toml", doc).declared

    assert (rule.name, rule.on) == ("loyalty_vip_welcome", ("tier.changed",))
    assert [name for name, _ in rule.properties] == ["t"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (declared_doc(on=["tier.chanegd"]), "no event type 'tier.chanegd'"),
        (declared_doc(condition="after.tier.nam == 'x'"), "condition \"after.tier.nam == 'x'\""),
        (declared_doc(properties={"t": "event.data.tierr"}), "properties.t 'event.data.tierr'"),
        (declared_doc(properties={"bad name": "after.email"}), "not a property name"),
        ({"extends": "rivo", "rules": {"loyalty_tier_upgraded": {"on": ["tier.changed"]}}},
         "built-in rule"),
        ({"extends": "rivo", "rules": {"x" * 33: {"on": ["tier.changed"]}}}, "at most 32"),
    ],
)  # fmt: skip
def test_declared_rule_mistakes_stop_start_up_naming_the_rule(doc, message):
    with pytest.raises(MappingError) as caught:
        parse_mapping("my.toml", doc)

    assert message in str(caught.value)
    assert "[rules." in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        GOLD_NEWLY,
        "after.tier == before.tier",
        'has(after.last_reward) && after.last_reward.name == "£10 off"',
        'after.last_reward == null || after.last_reward.name == "x"',
        'after.tags.exists(t, t == "vip") || size(after.tags) == 0',
        "after.points.total > before.points.total && after.points.credits >= 0.0",
        "after.tier.progress_to_next < 100.0 && event.data.tier == after.tier.name",
        'after.tier.expires_at > timestamp("2026-01-01T00:00:00Z")',
    ],
)
def test_evaluation_on_the_fields_read_agrees_with_the_whole_profile(source):
    """Reference: the program run over the whole event and profiles, as expressions see them."""
    before = profile_of(make_event("customer.enrolled", {}, email=EMAIL))
    event = make_event(
        "tier.changed",
        {"tier": "Gold", "progress_to_next": "40", "tier_expires_at": "2027-01-01T00:00:00Z"},
        email=EMAIL,
        at=60,
    )
    after = fold(before, event).profile
    condition = compile_condition(source, event_types=["tier.changed"])
    whole = {"event": _value(event), "before": _value(before), "after": _value(after)}

    try:
        expected = condition.program.execute({k: whole[k] for k in condition.reads})
    except TypeError:  # a field of a null value: "cannot be evaluated", value_of's None
        expected = None

    assert value_of(condition, Variables(event, before, after, event.occurred_at)) == expected
