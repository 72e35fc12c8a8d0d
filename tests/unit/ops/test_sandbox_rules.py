"""Ometria push rules of the sandbox, judged without a server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream.ops.sandbox.rules import (
    NOT_VALID,
    REQUIRED,
    TOO_LARGE,
    InvalidBatch,
    RecordError,
    RecordType,
    check_batch,
    parse_body,
    record_types_in,
    validate_record,
)

LIMIT = 61440


def contact(**fields: Any) -> dict[str, Any]:
    return {"@type": "contact", "@collection": "loyalty", "id": "cust-1", **fields}


def custom_event(**fields: Any) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": "evt-1",
        "timestamp": "2026-11-21T10:00:00+00:00",
        "event_type": "loyalty_points_earned",
        "identity_account_id": "cust-1",
        **fields,
    }


def errors_of(record: dict[str, Any], record_type: RecordType = "contact") -> list[RecordError]:
    return validate_record(record, record_type, max_record_bytes=LIMIT)


def paths_of(record: dict[str, Any], record_type: RecordType = "contact") -> list[str]:
    return [error.path for error in errors_of(record, record_type)]


# --- request level ---------------------------------------------------------------------------


def test_parse_body_invalid_utf8_raises_invalid_batch() -> None:
    with pytest.raises(InvalidBatch, match="UTF-8 JSON"):
        parse_body(b'[{"id": "\xff"}]')


def test_check_batch_single_type_returns_type_and_records() -> None:
    batch = check_batch([contact(), contact(id="cust-2")], max_records=100)

    assert batch.record_type == "contact"
    assert [record["id"] for record in batch.records] == ["cust-1", "cust-2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"@type": "contact", "id": "1"}, "JSON array"),
        ([], "1 to 100 records, got 0"),
        ([contact()] * 101, "1 to 100 records, got 101"),
        (["contact"], "not an object"),
        ([{"id": "1"}], "has @type None"),
        ([{"@type": "invoice", "id": "1"}], "expected one of contact, custom_event"),
        ([contact(), custom_event()], "one @type per request"),
    ],
    ids=["object", "empty", "too-many", "not-object", "no-type", "unknown-type", "mixed"],
)
def test_check_batch_broken_request_raises_with_reason(body: object, message: str) -> None:
    with pytest.raises(InvalidBatch, match=message):
        check_batch(body, max_records=100)


def test_record_types_in_mixed_body_returns_each_type() -> None:
    assert record_types_in([contact(), custom_event(), "junk"]) == {"contact", "custom_event"}


# --- contacts --------------------------------------------------------------------------------


def test_validate_contact_full_listing_accepted() -> None:
    record = contact(
        email="sarah@example.com",
        customer_id="cust-1",
        firstname="Sarah",
        lastname="Martinez",
        date_of_birth="1940-03-14",
        gender="f",
        phone_number="+447700900123",
        country_id="GB",
        timezone="Europe/London",
        store_ids=["shop.example.com"],
        timestamp_acquired="2026-11-21T10:00:00Z",
        marketing_optin="NOT_SPECIFIED",
        properties={"rivoPointsBalance": 120, "rivoVipTierName": "Gold", "tags": ["a", "b"]},
    )
    record["@merge"] = True

    assert errors_of(record) == []


def test_validate_contact_unknown_top_level_field_rejected_at_its_path() -> None:
    [error] = errors_of(contact(loyalty_tier="Gold"))

    assert (error.message, error.path) == (NOT_VALID, "root > loyalty_tier")


def test_validate_contact_missing_id_rejected_as_required() -> None:
    record = contact()
    del record["id"]

    [error] = errors_of(record)

    assert (error.message, error.path) == (REQUIRED, "root > id")


@pytest.mark.parametrize("value", ["", 42, None])
def test_validate_contact_id_not_a_non_empty_string_rejected(value: object) -> None:
    assert paths_of(contact(id=value)) == ["root > id"]


@pytest.mark.parametrize("value", [42, None, ["Sarah"]])
def test_validate_contact_string_field_of_other_type_rejected(value: object) -> None:
    assert paths_of(contact(firstname=value)) == ["root > firstname"]


@pytest.mark.parametrize("email", ["sarah@example.com", "a.b+c@mail.example.co.uk"])
def test_validate_contact_plausible_email_accepted(email: str) -> None:
    assert errors_of(contact(email=email)) == []


@pytest.mark.parametrize("email", ["sarah", "sarah@example", "sa rah@example.com", ""])
def test_validate_contact_malformed_email_rejected(email: str) -> None:
    assert paths_of(contact(email=email)) == ["root > email"]


@pytest.mark.parametrize("phone", ["+447700900123", "+12025550123", "+3531234567"])
def test_validate_contact_e164_phone_accepted(phone: str) -> None:
    assert errors_of(contact(phone_number=phone)) == []


@pytest.mark.parametrize(
    "phone", ["07700900123", "+44 7700 900123", "+0447700900123", "+12345", "+1234567890123456"]
)
def test_validate_contact_non_e164_phone_rejected(phone: str) -> None:
    assert paths_of(contact(phone_number=phone)) == ["root > phone_number"]


@pytest.mark.parametrize("value", ["14/03/1940", "1940-02-30", "1940-3-14", 19400314])
def test_validate_contact_bad_date_of_birth_rejected(value: object) -> None:
    assert paths_of(contact(date_of_birth=value)) == ["root > date_of_birth"]


def test_validate_contact_gender_outside_m_f_o_rejected() -> None:
    assert paths_of(contact(gender="female")) == ["root > gender"]


def test_validate_contact_unknown_marketing_optin_rejected() -> None:
    assert paths_of(contact(marketing_optin="YES")) == ["root > marketing_optin"]


def test_validate_contact_naive_subscription_timestamp_rejected() -> None:
    paths = paths_of(contact(timestamp_subscribed="2026-11-21T10:00:00"))

    assert paths == ["root > timestamp_subscribed"]


def test_validate_contact_store_ids_not_strings_rejected() -> None:
    assert paths_of(contact(store_ids=[1, 2])) == ["root > store_ids"]


def test_validate_contact_nested_property_rejected_at_its_path() -> None:
    paths = paths_of(contact(properties={"ok": 1, "tier": {"name": "Gold"}}))

    assert paths == ["root > properties > tier"]


def test_validate_contact_properties_not_an_object_rejected() -> None:
    assert paths_of(contact(properties=["Gold"])) == ["root > properties"]


def test_validate_contact_every_bad_field_reported() -> None:
    paths = paths_of(contact(gender="x", email="nope", colour="red"))

    assert sorted(paths) == ["root > colour", "root > email", "root > gender"]


# --- custom events ---------------------------------------------------------------------------


def test_validate_custom_event_documented_shape_accepted() -> None:
    record = custom_event(
        identity_email="sarah@example.com",
        properties={
            "reward_name": "£5 off",
            "points": 500,
            "value": 5.0,
            "first": True,
            "code": None,
            "product_ids": ["p1", "p2"],
        },
    )

    assert errors_of(record, "custom_event") == []


@pytest.mark.parametrize("missing", ["id", "timestamp", "event_type"])
def test_validate_custom_event_missing_required_field_rejected(missing: str) -> None:
    record = custom_event()
    del record[missing]

    [error] = errors_of(record, "custom_event")

    assert (error.message, error.path) == (REQUIRED, f"root > {missing}")


def test_validate_custom_event_event_type_of_32_chars_accepted() -> None:
    assert errors_of(custom_event(event_type="e" * 32), "custom_event") == []


def test_validate_custom_event_event_type_of_33_chars_rejected() -> None:
    assert paths_of(custom_event(event_type="e" * 33), "custom_event") == ["root > event_type"]


@pytest.mark.parametrize(
    "timestamp", ["2026-11-21T10:00:00", "2026-11-21", "yesterday", 1763719200]
)
def test_validate_custom_event_timestamp_without_offset_rejected(timestamp: object) -> None:
    assert paths_of(custom_event(timestamp=timestamp), "custom_event") == ["root > timestamp"]


@pytest.mark.parametrize(
    "timestamp", ["2026-11-21T10:00:00Z", "2026-11-21T10:00:00.123+01:00", "2026-11-21T10:00+00"]
)
def test_validate_custom_event_timestamp_with_offset_accepted(timestamp: str) -> None:
    assert errors_of(custom_event(timestamp=timestamp), "custom_event") == []


def test_validate_custom_event_without_identity_rejected_at_root() -> None:
    record = custom_event()
    del record["identity_account_id"]

    [error] = errors_of(record, "custom_event")

    assert (error.message, error.path) == (NOT_VALID, "root")


@pytest.mark.parametrize("identity", ["identity_email", "identity_account_id", "profile_id"])
def test_validate_custom_event_any_single_identity_accepted(identity: str) -> None:
    record = custom_event()
    del record["identity_account_id"]
    record[identity] = "sarah@example.com"

    assert errors_of(record, "custom_event") == []


def test_validate_custom_event_nested_property_rejected() -> None:
    record = custom_event(properties={"reward": {"name": "£5 off"}})

    assert paths_of(record, "custom_event") == ["root > properties > reward"]


def test_validate_custom_event_list_of_objects_property_rejected() -> None:
    record = custom_event(properties={"items": [{"sku": "a"}]})

    assert paths_of(record, "custom_event") == ["root > properties > items"]


def test_validate_custom_event_string_property_of_512_chars_accepted() -> None:
    assert errors_of(custom_event(properties={"note": "x" * 512}), "custom_event") == []


def test_validate_custom_event_string_property_of_513_chars_rejected() -> None:
    paths = paths_of(custom_event(properties={"note": "x" * 513}), "custom_event")

    assert paths == ["root > properties > note"]


def test_validate_custom_event_unknown_top_level_field_rejected() -> None:
    paths = paths_of(custom_event(points=5), "custom_event")

    assert paths == ["root > points"]


# --- every type ------------------------------------------------------------------------------


def test_validate_record_over_byte_limit_rejected_as_too_large() -> None:
    record = contact(properties={"blob": "x" * LIMIT})

    [error] = errors_of(record)

    assert (error.message, error.path) == (TOO_LARGE, "root")


def test_validate_record_exactly_at_byte_limit_accepted() -> None:
    record = contact(properties={"blob": ""})
    padding = LIMIT - len(orjson.dumps(record))

    record["properties"]["blob"] = "x" * padding

    assert len(orjson.dumps(record)) == LIMIT
    assert errors_of(record) == []


def test_validate_record_size_counts_utf8_bytes_not_characters() -> None:
    record = contact(properties={"blob": "é" * (LIMIT // 2)})

    assert [error.message for error in errors_of(record)] == [TOO_LARGE]


@pytest.mark.parametrize("record_type", ["order", "product"])
def test_validate_order_or_product_with_id_accepted(record_type: RecordType) -> None:
    record = {"@type": record_type, "id": "o-1", "anything": {"goes": True}}

    assert errors_of(record, record_type) == []


@pytest.mark.parametrize("record_type", ["order", "product"])
def test_validate_order_or_product_without_id_rejected(record_type: RecordType) -> None:
    assert paths_of({"@type": record_type}, record_type) == ["root > id"]


def test_validate_record_hint_never_echoes_the_value() -> None:
    [error] = errors_of(contact(email="not-an-email-sarah"))

    assert "sarah" not in error.hint
