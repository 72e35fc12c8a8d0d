"""User mapping files (TOML or JSON): extending presets, transforms, validation, trigger options."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from stream.domain.batch_fold import fold_history
from stream.domain.contact_mapping import map_contact
from stream.domain.mapping import PRESETS, MappingFile, load_mapping, load_preset, parse_mapping
from stream.domain.profile import LastReward, PointsState, Profile, TierState
from stream.domain.sync import SyncRules
from stream.domain.triggers import TriggerConfig, TriggerOptions
from stream.errors import MappingError
from tests.support import paths
from tests.support.events import make_event

EMAIL = "sarah@example.com"
PLUS_TWO = timezone(timedelta(hours=2))
PROFILE = Profile(
    customer_id="c1",
    email=EMAIL,
    first_name="Sarah",
    last_name="Martinez",
    loyalty_status="member",
    enrolled_at=datetime(2026, 3, 1, 8, 15, tzinfo=PLUS_TWO),
    blocked=True,
    referral_url="https://example.com/r/kL9m",
    insights_segment="Loyal",
    date_of_birth="03-15",
    points=PointsState(balance=150, pending=25, spent=100, lifetime=250, credits="2.50"),
    rewards_claimed=1,
    rewards_used=1,
    tier=TierState(
        name="Gold",
        expires_at=datetime(2027, 11, 21, tzinfo=UTC),
        progress="379.0",
        next="Platinum",
        progress_to_next="120.5",
        progress_to_renew="0",
        forecast="Gold",
    ),
)


@pytest.fixture(params=["toml", "json"])
def write_mapping(request, tmp_path):
    """Write a mapping given as TOML text to a file in the parametrised format; return its path."""

    def write(text: str) -> Path:
        path = tmp_path / f"mapping.{request.param}"
        if request.param == "toml":
            path.write_text(text, encoding="utf-8")
        else:
            path.write_text(json.dumps(tomllib.loads(text)), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_mapping):
    """Load a mapping written from TOML text (as TOML and as JSON), as the worker would."""

    def load_text(text: str) -> MappingFile:
        return load_mapping("rivo", write_mapping(text))

    return load_text


def contact_of(mapping: MappingFile, profile: Profile = PROFILE) -> dict:
    contact = map_contact(profile, mapping.contact, "loyalty")
    assert contact is not None
    return contact


def field_toml(target: str, source: str, extra: str = "") -> str:
    return f'[[field]]\ntarget = "{target}"\nsource = "{source}"\n{extra}\n'


# --- extending a preset ------------------------------------------------------------------------


def test_load_mapping_extends_preset_with_extra_field_adds_property(load):
    mapping = load('extends = "rivo"\n' + field_toml("loyaltyTier", "tier.name"))

    properties = contact_of(mapping)["properties"]

    assert properties["loyaltyTier"] == "Gold"
    assert properties["rivoPointsBalance"] == 150
    assert properties["rivoVipTierName"] == "Gold"


def test_load_mapping_entry_with_preset_target_overrides_preset_rule(load):
    mapping = load('extends = "rivo"\n' + field_toml("rivoPointsBalance", "points.total"))

    properties = contact_of(mapping)["properties"]

    assert properties["rivoPointsBalance"] == 175
    assert [rule.target for rule in mapping.contact.fields].count("rivoPointsBalance") == 1


def test_load_mapping_remove_drops_preset_field(load):
    mapping = load('extends = "rivo"\nremove = ["rivoStoreCredit"]\n')

    contact = contact_of(mapping)

    assert "rivoStoreCredit" not in contact["properties"]
    assert contact["properties"]["rivoPointsBalance"] == 150


def test_load_mapping_remove_target_missing_from_preset_raises_naming_it(load):
    with pytest.raises(MappingError, match=r"remove: 'rivoPointsTotal' is not in preset rivo"):
        load('extends = "rivo"\nremove = ["rivoPointsTotal"]\n')


def test_load_mapping_remove_without_extends_raises_asking_for_extends(load):
    with pytest.raises(MappingError, match="extends"):
        load('remove = ["rivoStoreCredit"]\n' + field_toml("points", "points.balance"))


# --- transforms, value maps and placement ------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "extra", "expected"),
    [
        ("tier.progress", 'transform = "integer"', 379),
        ("points.balance", 'transform = "integer"', 150),
        ("points.credits", 'transform = "decimal"', 2.5),
        ("tier.progress_to_next", 'transform = "decimal"', 120.5),
        ("points.balance", 'transform = "text"', "150"),
        ("blocked", 'transform = "bool"', True),
        ("enrolled_at", 'transform = "datetime"', "2026-03-01T08:15:00+02:00"),
        ("enrolled_at", 'transform = "date"', "2026-03-01"),
        ("enrolled_at", 'transform = "date"\nformat = "DD/MM/YYYY"', "01/03/2026"),
        ("date_of_birth", 'transform = "date"\nformat = "1940-MM-DD"', "1940-03-15"),
        ("date_of_birth", 'transform = "birthday_1940"', "1940-03-15"),
        ("loyalty_status", 'values = { member = "Member", guest = "Guest" }', "Member"),
        ("blocked", 'values = { true = "Yes", false = "No" }', "Yes"),
        ("points.balance", "", 150),
        ("blocked", "", True),
    ],
)
def test_map_contact_transform_writes_typed_value(load, source, extra, expected):
    mapping = load(field_toml("loyaltyValue", source, extra))

    value = contact_of(mapping)["properties"]["loyaltyValue"]

    assert value == expected
    assert type(value) is type(expected)


def test_map_contact_bool_value_map_false_source_writes_false_value(load):
    mapping = load(
        field_toml("loyaltyBlocked", "blocked", 'values = { true = "Yes", false = "No" }')
    )

    properties = contact_of(mapping, replace(PROFILE, blocked=False))["properties"]

    assert properties["loyaltyBlocked"] == "No"


def test_map_contact_value_missing_from_value_map_written_unchanged(load):
    mapping = load(field_toml("loyaltyStatus", "loyalty_status", 'values = { member = "Member" }'))

    properties = contact_of(mapping, replace(PROFILE, loyalty_status="guest"))["properties"]

    assert properties["loyaltyStatus"] == "guest"


def test_map_contact_bool_transform_false_source_writes_false(load):
    mapping = load(field_toml("loyaltyBlocked", "blocked", 'transform = "bool"'))

    properties = contact_of(mapping, replace(PROFILE, blocked=False))["properties"]

    assert properties["loyaltyBlocked"] is False


def test_map_contact_builtin_targets_top_level_others_in_properties(load):
    mapping = load(
        field_toml("firstname", "first_name")
        + field_toml("date_of_birth", "date_of_birth", 'transform = "birthday_1940"')
        + field_toml("loyaltySegment", "insights_segment")
    )

    contact = contact_of(mapping)

    assert contact["firstname"] == "Sarah"
    assert contact["date_of_birth"] == "1940-03-15"
    assert contact["properties"] == {"loyaltySegment": "Loyal"}


def test_map_contact_source_none_leaves_field_out(load):
    mapping = load(
        field_toml("lastname", "last_name")
        + field_toml("loyaltyTier", "tier.name")
        + field_toml("loyaltyEndsAt", "membership_ends_at", 'transform = "datetime"')
        + field_toml("loyaltyPoints", "points.balance")
    )
    profile = replace(PROFILE, last_name=None, tier=TierState())

    contact = contact_of(mapping, profile)

    assert "lastname" not in contact
    assert contact["properties"] == {"loyaltyPoints": 150}


def test_map_contact_profile_without_email_gives_no_contact(load):
    mapping = load(field_toml("loyaltyPoints", "points.balance"))

    assert map_contact(replace(PROFILE, email=None), mapping.contact, "loyalty") is None


# --- consent -----------------------------------------------------------------------------------

OPTIN_BY_STATUS = 'values = { member = "EXPLICITLY_OPTEDIN", guest = "NOT_SPECIFIED" }'


def test_load_mapping_marketing_optin_with_consent_sets_top_level_optin(load):
    mapping = load(
        "consent = true\n" + field_toml("marketing_optin", "loyalty_status", OPTIN_BY_STATUS)
    )

    contact = contact_of(mapping)

    assert mapping.contact.consent is True
    assert contact["marketing_optin"] == "EXPLICITLY_OPTEDIN"
    assert "marketing_optin" not in contact["properties"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            field_toml("marketing_optin", "loyalty_status", OPTIN_BY_STATUS),
            ["[[field]] #1 (target 'marketing_optin')", "consent = true"],
        ),
        (
            "consent = true\n" + field_toml("@force_optin", "blocked"),
            ["[[field]] #1 (target '@force_optin')", "only marketing_optin"],
        ),
        (
            "consent = true\n"
            + field_toml("marketing_optin", "loyalty_status", 'values = { member = "yes" }'),
            ["[[field]] #1 (target 'marketing_optin')", "EXPLICITLY_OPTEDIN"],
        ),
    ],
    ids=["without-consent", "force-optin", "invalid-optin-value"],
)
def test_load_mapping_consent_field_not_allowed_raises(load, text, fragments):
    with pytest.raises(MappingError) as caught:
        load(text)

    for fragment in fragments:
        assert fragment in str(caught.value)


# --- validation errors name the file, the entry and the fix ------------------------------------

VALID = field_toml("loyaltyPoints", "points.balance")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            VALID + field_toml("loyaltyColour", "favourite_colour"),
            ["[[field]] #2 (target 'loyaltyColour')", "'favourite_colour'", "points.balance"],
        ),
        (
            VALID + field_toml("loyaltyPointsText", "points.balance", 'transform = "money"'),
            ["[[field]] #2 (target 'loyaltyPointsText')", "transform", "'integer'", "'decimal'"],
        ),
        (
            VALID + field_toml("loyalty points", "points.balance"),
            ["[[field]] #2 (target 'loyalty points')", "no spaces"],
        ),
        (
            VALID + field_toml("email", "referral_url"),
            ["[[field]] #2 (target 'email')", "map another field"],
        ),
        (
            VALID + field_toml("id", "referral_code"),
            ["[[field]] #2 (target 'id')", "map another field"],
        ),
        (
            VALID + field_toml("customer_id", "referral_code"),
            ["[[field]] #2 (target 'customer_id')", "map another field"],
        ),
        (
            VALID + field_toml("loyaltyPoints", "points.total"),
            ["[[field]] #2 (target 'loyaltyPoints')", "mapped twice", "keep one entry"],
        ),
        (
            VALID + field_toml("loyaltyTier", "tier.name", 'format = "YYYY"'),
            ["[[field]] #2 (target 'loyaltyTier')", 'transform = "date"'],
        ),
        (
            VALID
            + field_toml(
                "loyaltyDob", "date_of_birth", 'transform = "date"\nformat = "YYYY-MM-DD"'
            ),
            ["[[field]] #2 (target 'loyaltyDob')", "no year", '"1940-MM-DD"'],
        ),
        (
            VALID + field_toml("loyaltyDob", "date_of_birth", 'transform = "date"'),
            ["[[field]] #2 (target 'loyaltyDob')", '"1940-MM-DD"'],
        ),
        ('colour = "red"\n' + VALID, ["colour", "not permitted"]),
        ("consent = false\n", ["no fields", "[[field]]", 'extends = "rivo"']),
        (
            VALID + "[triggers.unknown_rule]\nenabled = false\n",
            ["[triggers.unknown_rule]", "unknown rule", "loyalty_points_earned"],
        ),
        (
            VALID + f'[triggers.loyalty_points_earned]\nevent_type = "{"x" * 33}"\n',
            ["triggers.loyalty_points_earned.event_type", "32 characters"],
        ),
    ],
    ids=[
        "unknown-source",
        "unknown-transform",
        "target-with-space",
        "reserved-email",
        "reserved-id",
        "reserved-customer-id",
        "target-twice",
        "format-without-date",
        "year-format-on-month-day",
        "default-year-format-on-month-day",
        "unknown-top-level-key",
        "no-fields-no-extends",
        "unknown-trigger-rule",
        "event-type-too-long",
    ],
)
def test_load_mapping_invalid_file_raises_naming_file_entry_and_fix(write_mapping, text, fragments):
    path = write_mapping(text)

    with pytest.raises(MappingError) as caught:
        load_mapping("rivo", path)

    message = str(caught.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_load_mapping_invalid_toml_raises_naming_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[[field]]\ntarget = "loyaltyPoints\n', encoding="utf-8")

    with pytest.raises(MappingError, match="not valid TOML") as caught:
        load_mapping("rivo", path)

    assert str(path) in str(caught.value)


def test_load_mapping_invalid_json_raises_naming_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"field": [', encoding="utf-8")

    with pytest.raises(MappingError, match="not valid JSON") as caught:
        load_mapping("rivo", path)

    assert str(path) in str(caught.value)


def test_load_mapping_unreadable_path_raises_naming_setting(tmp_path):
    path = tmp_path / "missing.toml"

    with pytest.raises(MappingError, match="STREAM_MAPPING__FILE") as caught:
        load_mapping("rivo", path)

    assert str(path) in str(caught.value)


def test_load_mapping_without_file_uses_preset():
    mapping = load_mapping("loyaltylion", None)

    assert "loyalty_points_total" in {rule.target for rule in mapping.contact.fields}


def test_load_mapping_unknown_preset_raises_naming_setting():
    with pytest.raises(MappingError, match="STREAM_MAPPING__PRESET"):
        load_mapping("antavo", None)


def test_load_mapping_source_inside_optional_model_maps_its_value(load):
    mapping = load(field_toml("loyaltyLastReward", "last_reward.name"))
    profile = replace(PROFILE, last_reward=LastReward(name="£10 off", code="S10"))

    assert contact_of(mapping, profile)["properties"]["loyaltyLastReward"] == "£10 off"


@pytest.mark.parametrize("source", ["points", "tier", "as_of", "last_contact"])
def test_load_mapping_source_naming_group_or_bookkeeping_raises(load, source):
    with pytest.raises(MappingError, match="is not a profile field"):
        load(field_toml("loyaltyValue", source))


@pytest.mark.parametrize(
    "text",
    [
        "consent = true\n" + field_toml("marketing_optin", "blocked"),
        "consent = true\n"
        + field_toml("marketing_optin", "blocked", 'values = { true = "EXPLICITLY_OPTEDOUT" }'),
        field_toml("loyaltyUrl", "referral_url", 'transform = "integer"'),
        field_toml("firstname", "points.balance"),
        field_toml("gender", "loyalty_status"),
    ],
    ids=[
        "optin-without-values",
        "optin-partial-values",
        "integer-on-text",
        "int-into-text-builtin",
        "free-text-into-enum-builtin",
    ],
)
def test_load_mapping_accepted_file_never_fails_when_mapping_a_profile(load, text):
    profile = replace(PROFILE, blocked=False)
    try:
        mapping = load(text)
    except MappingError:
        return  # refusing the file at start-up is a correct outcome

    assert contact_of(mapping, profile)["customer_id"] == "c1"


# --- trigger options ---------------------------------------------------------------------------

TRIGGERS = (
    VALID
    + '[triggers.loyalty_points_earned]\nevent_type = "points_earned"\nproperties = ["points"]\n'
    + "[triggers.loyalty_reward_used]\nenabled = false\n"
)


def test_load_mapping_triggers_parsed_into_options(load):
    mapping = load(TRIGGERS)

    assert mapping.triggers == {
        "loyalty_points_earned": TriggerOptions(
            enabled=True, event_type="points_earned", properties=frozenset({"points"})
        ),
        "loyalty_reward_used": TriggerOptions(enabled=False),
    }


def test_load_mapping_without_triggers_has_no_options(load):
    assert load(VALID).triggers == {}


def custom_events_of(mapping: MappingFile, *events) -> list[dict]:
    rules = SyncRules(mapping, "loyalty", TriggerConfig(options=mapping.triggers))
    now = max(event.occurred_at for event in events) + timedelta(minutes=1)
    _, records = fold_history(events, rules, now)
    return [record for record in records if record["@type"] == "custom_event"]


def test_fold_trigger_options_rename_event_and_keep_chosen_properties(load):
    earned = make_event(
        "points.earned", {"points": 50, "action": "purchase"}, email=EMAIL, event_id="ev-9"
    )

    (record,) = custom_events_of(load(TRIGGERS), earned)

    assert record["event_type"] == "points_earned"
    assert record["id"] == "c1:ev-9:loyalty_points_earned"
    assert record["properties"] == {"points": 50}


def test_fold_disabled_trigger_suppressed_other_rules_fire(load):
    redeemed = make_event(
        "points.redeemed",
        {"redemption_id": "r1", "code": "SAVE10", "reward": {"name": "£10 off"}},
        email=EMAIL,
        at=1,
    )
    used = make_event("reward.used", {"redemption_id": "r1", "code": "SAVE10"}, at=2)

    records = custom_events_of(load(TRIGGERS), redeemed, used)

    assert [record["event_type"] for record in records] == ["loyalty_reward_claimed"]


def test_load_mapping_trigger_property_rule_never_emits_raises(load):
    with pytest.raises(MappingError, match="pointz"):
        load(VALID + '[triggers.loyalty_points_earned]\nproperties = ["pointz"]\n')


# --- shipped presets ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_load_preset_shipped_preset_maps_every_field_of_a_full_profile(name):
    mapping = load_preset(name)

    contact = contact_of(mapping)

    written = set(contact) | set(contact["properties"])
    assert {rule.target for rule in mapping.contact.fields} <= written


def test_load_preset_rivo_has_the_documented_fields():
    targets = {rule.target for rule in load_preset("rivo").contact.fields}

    assert targets == {
        "firstname",
        "lastname",
        "rivoPointsBalance",
        "rivoStoreCredit",
        "rivoLoyaltyStatus",
        "rivoReferralUrl",
        "rivoDateOfBirth",
        "rivoVipTierName",
    }


def test_parse_mapping_preset_document_round_trips_through_parse():
    # A user can copy a preset file and start from it: the same document parses as a user file.
    text = (paths.REPO / "stream" / "domain" / "presets" / "loyaltylion.toml").read_text(
        encoding="utf-8"
    )

    mapping = parse_mapping("copy.toml", tomllib.loads(text))

    assert mapping.contact.fields == load_preset("loyaltylion").contact.fields
