from __future__ import annotations

from datetime import UTC, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stream.domain.records import (
    CONTACT_BUILTIN_ORDER,
    VERSION_KEY,
    Contact,
    CustomEvent,
    Version,
    contact_record,
    custom_event_record,
    decode,
    encode,
    encode_version,
    parse_version,
    version_of,
    with_version,
)

CONTACT = {"@type": "contact", "id": "c1", "email": "a@example.com"}
EVENT = {"@type": "custom_event", "id": "e1:loyalty_points_earned", "event_type": "x"}


def test_outbox_message_with_one_record_decodes_to_that_record():
    assert decode(encode(CONTACT)) == [CONTACT]


def test_outbox_message_with_a_customers_records_keeps_their_order():
    assert decode(encode([CONTACT, EVENT])) == [CONTACT, EVENT]


@pytest.mark.parametrize("value", [b"{not json", b"42", b'["a", "b"]', b"[{}, 3]"])
def test_outbox_message_that_is_not_records_is_refused(value):
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError is a ValueError too
        decode(value)


def test_encode_sorts_keys_so_equal_records_are_equal_bytes():
    assert encode({"b": 1, "a": 2}) == orjson.dumps({"a": 2, "b": 1})


scalars = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
)
properties = st.dictionaries(st.text(max_size=10), scalars, max_size=6)
zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.datetimes(timezones=st.one_of(st.just(UTC), zones))


def model_or_error(build):
    try:
        return build()
    except ValidationError as exc:
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(
    customer_id=st.text(max_size=8),
    builtins=st.dictionaries(
        st.sampled_from(CONTACT_BUILTIN_ORDER),
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(["m", "f", "o", "NOT_SPECIFIED", "2026-01-02T03:04:05+01:00"]),
            st.integers(),
            moments,
        ),
    ),
    props=properties,
)
def test_contact_record_equals_the_models_json(customer_id, builtins, props):
    def fast():
        return contact_record("loyalty", customer_id, "a@example.com", builtins, props)

    def model():
        return Contact(
            collection="loyalty",
            id=customer_id,
            customer_id=customer_id,
            email="a@example.com",
            properties=props,
            **builtins,
        ).to_json()

    expected, got = model_or_error(model), model_or_error(fast)
    assert got == expected
    if isinstance(got, dict):
        assert list(got) == list(expected)


@settings(max_examples=300, deadline=None)
@given(
    record_id=st.text(max_size=8),
    timestamp=moments,
    event_type=st.text(max_size=40),
    email=st.one_of(st.none(), st.text(max_size=12)),
    account=st.one_of(st.none(), st.text(max_size=12)),
    props=properties,
)
def test_custom_event_record_equals_the_models_json(
    record_id, timestamp, event_type, email, account, props
):
    fields = {
        "id": record_id,
        "timestamp": timestamp,
        "event_type": event_type,
        "identity_email": email,
        "identity_account_id": account,
        "properties": props,
    }
    expected = model_or_error(lambda: CustomEvent(**fields).to_json())
    got = model_or_error(lambda: custom_event_record(**fields))
    assert got == expected
    if isinstance(got, dict):
        assert list(got) == list(expected)
        assert encode(got) == encode(expected)


def test_a_contact_version_before_any_state_reset_is_the_plain_offset_it_always_was():
    contact = with_version(CONTACT, 41)
    assert contact[VERSION_KEY] == 41
    assert version_of(contact) == Version(0, 41)
    assert encode_version(Version(0, 41)) == b"41"
    assert parse_version(b"41") == Version(0, 41), "a versions topic written before generations"


def test_a_contact_version_after_a_state_reset_carries_its_generation_both_ways():
    contact = with_version(CONTACT, 3, generation=2)
    assert version_of(decode(encode(contact))[0]) == Version(2, 3)
    assert parse_version(encode_version(Version(2, 3))) == Version(2, 3)


def test_a_later_generation_is_newer_whatever_offset_it_reached():
    assert Version(1, 0) > Version(0, 20_002)
    assert Version(1, 4) > Version(1, 3)


@pytest.mark.parametrize("value", [b"x", b"1.5", b"true", b"[1]", b'[1, "2"]', b"[1, 2, 3]"])
def test_a_value_that_is_not_a_version_is_refused(value):
    with pytest.raises(ValueError, match="not a contact version"):
        parse_version(value)


def test_a_record_without_a_readable_version_has_none():
    assert version_of(CONTACT) is None
    assert version_of({**CONTACT, VERSION_KEY: True}) is None
    assert version_of({**CONTACT, VERSION_KEY: [1, "2"]}) is None
