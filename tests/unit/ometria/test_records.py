from __future__ import annotations

import orjson
import pytest

from stream.ometria.records import decode, encode

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
