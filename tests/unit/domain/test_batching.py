"""plan_requests: coalesce outbox records, one type per request, at most 100 per request."""

from __future__ import annotations

from typing import Any

from stream.domain.batching import plan_requests
from stream.domain.records import MAX_RECORD_BYTES, MAX_RECORDS_PER_REQUEST, encode


def contact(record_id: str, collection: str = "loyalty", **properties: Any) -> dict[str, Any]:
    return {
        "@type": "contact",
        "@collection": collection,
        "id": record_id,
        "customer_id": record_id,
        "email": f"{record_id}@example.com",
        "properties": properties,
    }


def custom_event(record_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": record_id,
        "timestamp": "2026-11-21T10:00:00Z",
        "event_type": "loyalty_points_earned",
        "identity_account_id": "c1",
        "properties": properties,
    }


def ids(request: list[dict[str, Any]]) -> list[str]:
    return [record["id"] for record in request]


def test_plan_requests_no_records_plans_nothing():
    plan = plan_requests([])

    assert (plan.requests, plan.too_large, plan.coalesced) == ([], [], 0)


def test_plan_requests_same_contact_twice_latest_wins():
    older = contact("c1", rivoPointsBalance=10)
    newer = contact("c1", rivoPointsBalance=25)

    plan = plan_requests([older, contact("c2"), newer])

    assert plan.requests == [[newer, contact("c2")]]
    assert plan.coalesced == 1


def test_plan_requests_same_id_in_other_collection_kept_apart():
    plan = plan_requests([contact("c1", collection="loyalty"), contact("c1", collection="vip")])

    assert [r["@collection"] for r in plan.requests[0]] == ["loyalty", "vip"]
    assert plan.coalesced == 0


def test_plan_requests_duplicate_custom_event_sent_once():
    plan = plan_requests([custom_event("e1:x"), custom_event("e2:x"), custom_event("e1:x")])

    assert [ids(r) for r in plan.requests] == [["e1:x", "e2:x"]]
    assert plan.coalesced == 1


def test_plan_requests_contact_and_event_sharing_an_id_both_kept():
    plan = plan_requests([contact("same"), custom_event("same")])

    assert [[r["@type"] for r in request] for request in plan.requests] == [
        ["contact"],
        ["custom_event"],
    ]
    assert plan.coalesced == 0


def test_plan_requests_contacts_sent_before_custom_events():
    records = [custom_event("e1:x"), contact("c1"), custom_event("e2:x"), contact("c2")]

    plan = plan_requests(records)

    assert [ids(r) for r in plan.requests] == [["c1", "c2"], ["e1:x", "e2:x"]]


def test_plan_requests_mixed_batch_never_mixes_types_in_a_request():
    records = [contact(f"c{i}") if i % 3 else custom_event(f"e{i}:x") for i in range(300)]

    plan = plan_requests(records)

    assert [len({r["@type"] for r in request}) for request in plan.requests] == [1] * len(
        plan.requests
    )
    assert [(r[0]["@type"], len(r)) for r in plan.requests] == [
        ("contact", 100),
        ("contact", 100),
        ("custom_event", 100),
    ]


def test_plan_requests_250_contacts_chunked_100_100_50_in_order():
    records = [contact(f"c{i:03d}") for i in range(250)]

    plan = plan_requests(records)

    assert [len(r) for r in plan.requests] == [100, 100, 50]
    assert [record for request in plan.requests for record in request] == records
    assert max(len(r) for r in plan.requests) <= MAX_RECORDS_PER_REQUEST


def test_plan_requests_custom_max_records_chunks_smaller():
    plan = plan_requests([contact(f"c{i}") for i in range(5)], max_records=2)

    assert [len(r) for r in plan.requests] == [2, 2, 1]


def padded(size: int) -> dict[str, Any]:
    """A contact whose encoding is exactly `size` bytes."""
    base = contact("big", note="")
    return contact("big", note="x" * (size - len(encode(base))))


def test_plan_requests_record_over_60_kib_goes_to_too_large():
    big = padded(MAX_RECORD_BYTES + 1)

    plan = plan_requests([contact("c1"), big, custom_event("e1:x")])

    assert plan.too_large == [big]
    assert [ids(r) for r in plan.requests] == [["c1"], ["e1:x"]]


def test_plan_requests_record_of_exactly_60_kib_is_sent():
    exact = padded(MAX_RECORD_BYTES)
    assert len(encode(exact)) == MAX_RECORD_BYTES

    plan = plan_requests([exact])

    assert plan.requests == [[exact]]
    assert plan.too_large == []


def test_plan_requests_coalesced_counts_every_superseded_record():
    records = [contact("c1", v=i) for i in range(4)] + [custom_event("e1:x")] * 3

    plan = plan_requests(records)

    assert plan.coalesced == 5
    assert plan.requests == [[contact("c1", v=3)], [custom_event("e1:x")]]
