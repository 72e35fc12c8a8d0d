"""coalesce and erasure records: an erased customer's earlier records are never sent."""

from __future__ import annotations

from typing import Any

from stream.domain.batching import Erasure, coalesce
from stream.domain.erasure import erasure_record
from stream.domain.records import Version, with_version


def contact(cid: str, version: int, balance: int = 0) -> dict[str, Any]:
    record = {"@type": "contact", "@collection": "loyalty", "id": cid, "customer_id": cid}
    return with_version({**record, "properties": {"balance": balance}}, version)


def custom(event_id: str, account: str) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": event_id,
        "event_type": "loyalty_points_earned",
        "identity_account_id": account,
        "identity_email": f"{account}@example.com",
    }


def nothing_delivered(partition: int, cid: str) -> Version | None:
    return None


def test_coalesce_erasure_drops_the_customers_earlier_records_and_is_never_sent():
    plan = coalesce(
        [
            (1, contact("c", 3)),
            (1, custom("c:e1:points", "c")),
            (1, contact("d", 4)),
            (1, erasure_record("c", "c")),
            (1, custom("d:e2:points", "d")),
        ],
        nothing_delivered,
    )
    assert plan.records == [contact("d", 4), custom("d:e2:points", "d")]
    assert plan.versions == {(1, "d"): Version(0, 4)}
    assert plan.erasures == [Erasure(1, "c", ("c",))]
    assert plan.erased == 2


def test_coalesce_erasure_without_a_contact_id_still_drops_the_customers_contact():
    plan = coalesce([(0, contact("c", 3)), (0, erasure_record("c", None))], nothing_delivered)
    assert plan.records == []
    assert plan.erasures == [Erasure(0, "c", ("c",))], "the dropped contact's version goes too"
    assert plan.erased == 1


def test_coalesce_erasure_of_a_customer_with_nothing_in_the_round_is_reported():
    plan = coalesce([(2, erasure_record("c", "c"))], nothing_delivered)
    assert (plan.records, plan.erased) == ([], 0)
    assert plan.erasures == [Erasure(2, "c", ("c",))]


def test_coalesce_re_enrolment_after_the_erasure_is_sent_despite_an_older_delivered_version():
    # The contact delivered before the erasure was at version 7; the re-enrolled customer's
    # new contact is folded at 2 in a new profile and must not be judged stale against it.
    def delivered(partition: int, cid: str) -> Version | None:
        return Version(0, 7) if cid == "c" else None

    plan = coalesce(
        [
            (0, contact("c", 8, 80)),
            (0, erasure_record("c", "c")),
            (0, contact("c", 2, 20)),
            (0, custom("c:e9:enrolled", "c")),
        ],
        delivered,
    )
    assert plan.records == [contact("c", 2, 20), custom("c:e9:enrolled", "c")]
    assert plan.versions == {(0, "c"): Version(0, 2)}
    assert (plan.erased, plan.stale) == (1, 0)


def test_coalesce_erasure_forgets_delivered_versions_only_in_its_own_partition():
    def delivered(partition: int, cid: str) -> Version | None:
        return Version(0, 9)

    plan = coalesce([(0, erasure_record("c", "c")), (1, contact("c", 2))], delivered)
    assert (plan.records, plan.stale) == ([], 1)


def test_coalesce_erasure_record_without_a_customer_is_unusable_and_never_sent():
    broken = {"@type": "@erasure", "contact_id": "c"}
    plan = coalesce([(0, contact("c", 1)), (0, broken)], nothing_delivered)
    assert plan.records == [contact("c", 1)]
    assert plan.unusable == [broken]
    assert plan.erasures == []
