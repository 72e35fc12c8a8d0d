"""Parsing reuses a customer identity already validated: the outcome never depends on it."""

from __future__ import annotations

import orjson
import pytest

from stream.domain.events import InvalidEvent, parse_event
from tests.support.events import event_doc


def _parse(customer: dict[str, object]) -> object:
    doc = event_doc("points.earned", {"points": 1}, event_id="e-1")
    doc["customer"] = customer
    return parse_event(orjson.dumps(doc))


def test_parse_customer_id_true_after_the_text_id_1_is_still_rejected():
    assert _parse({"id": "1"}).customer.id == "1"
    with pytest.raises(InvalidEvent, match=r"customer\.id: "):
        _parse({"id": True})


def test_parse_invalid_customer_seen_twice_gives_the_same_reason_both_times():
    customer = {"id": "c-1", "email": "not an address"}
    reasons = []
    for _ in range(2):
        with pytest.raises(InvalidEvent) as caught:
            _parse(customer)
        reasons.append(caught.value.reason)
    assert reasons[0] == reasons[1]
    assert "customer.email: expected an email address" in reasons[0]


def test_parse_same_customer_again_gives_an_equal_event():
    customer = {"id": "c-2", "email": "ann@example.com", "first_name": "Ann"}
    first, second = _parse(customer), _parse(dict(customer))
    assert first.customer == second.customer
    assert second.customer.email == "ann@example.com"
