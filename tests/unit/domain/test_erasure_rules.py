"""What a record means after its customer's erasure (stream.domain.erasure), case by case."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from stream.domain.erasure import AfterErasure, after_erasure, erased_id
from stream.domain.events import parse_event
from stream.domain.profile import fold

AT = datetime(2026, 11, 21, tzinfo=UTC).isoformat()


def event(kind: str):
    data = {"points": 5} if kind == "points.earned" else {}
    customer = {"id": "c1", "email": "c1@example.com"}
    doc = {"event_id": "e", "type": kind, "occurred_at": AT, "customer": customer, "data": data}
    return parse_event(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("kind", "profile_offset", "offset", "erased_at", "expected"),
    [
        ("points.earned", None, 3, None, AfterErasure.FOLD),  # no erasure on record
        ("points.earned", None, 3, 10, AfterErasure.BEFORE),  # a replay of older history
        ("customer.enrolled", None, 3, 10, AfterErasure.BEFORE),  # not even an enrolment
        ("customer.erased", None, 10, 10, AfterErasure.DONE),  # the erasure, read again
        ("customer.erased", 7, 10, 10, AfterErasure.FOLD),  # a crash left the profile: again
        ("customer.erased", 12, 10, 10, AfterErasure.DONE),  # re-enrolled since: kept
        ("points.earned", None, 11, 10, AfterErasure.NOT_ENROLLED),
        ("customer.enrolled", None, 11, 10, AfterErasure.FOLD),  # a new profile starts
        ("points.earned", 11, 12, 10, AfterErasure.FOLD),  # the new profile goes on
        ("customer.erased", None, 15, 10, AfterErasure.FOLD),  # a second erasure
    ],
)
def test_a_record_after_an_erasure_is_judged_by_its_offset_and_type(
    kind, profile_offset, offset, erased_at, expected
):
    assert after_erasure(event(kind), profile_offset, offset, erased_at) is expected


def test_the_erased_id_is_a_keyed_hash_that_never_holds_the_id():
    one = erased_id(b"key-1", "customer-42")
    assert one == erased_id(b"key-1", "customer-42")  # every process finds the same record
    assert one != erased_id(b"key-2", "customer-42")  # without the key it cannot be matched
    assert one != erased_id(b"key-1", "customer-43")
    assert "customer-42" not in one
    assert len(one) == 32


def test_an_erasure_is_never_folded_into_a_profile():
    with pytest.raises(ValueError, match="erasure deletes the profile"):
        fold(None, event("customer.erased"))
