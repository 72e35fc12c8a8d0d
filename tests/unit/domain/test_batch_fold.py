"""The batch fold (stream.domain.batch_fold): a batch's admitted records into the profiles to
write, the outbox records, the counts and the dead-letter reasons, with no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest

from stream.domain.batch_fold import (
    Admitted,
    BatchFold,
    FoldMarks,
    admit_record,
    fold_history,
)
from stream.domain.erasure import ERASURE_RECORD
from stream.domain.intake import EventWindow
from stream.domain.mapping import load_preset
from stream.domain.records import version_of
from stream.domain.sync import SyncRules
from stream.domain.triggers import TriggerConfig
from stream.domain.wire import WireFormat
from tests.support.events import T0, event_doc

NOW = T0 + timedelta(minutes=5)
RULES = SyncRules(load_preset("rivo"), "loyalty", TriggerConfig())


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Erasures:
    def __init__(self, at: dict[tuple[str, int], int] | None = None) -> None:
        self.at = at or {}

    def __len__(self) -> int:
        return len(self.at)

    def erased_at(self, customer_id: str, partition: int) -> int | None:
        return self.at.get((customer_id, partition))


def admitted(offset: int, doc: dict, partition: int = 0) -> Admitted:
    key = doc["customer"]["id"].encode()
    record = Record(partition, offset, key, orjson.dumps(doc))
    return admit_record(record, NOW, EventWindow(), WireFormat())


def enrolled(customer_id: str = "c1", at: float = 0.0) -> dict:
    return event_doc(
        "customer.enrolled", customer_id=customer_id, email=f"{customer_id}@x.io", at=at
    )


def earned(points: int, customer_id: str = "c1", at: float = 1.0) -> dict:
    return event_doc("points.earned", {"points": points}, customer_id=customer_id, at=at)


def erased(customer_id: str = "c1", at: float = 2.0) -> dict:
    return event_doc("customer.erased", customer_id=customer_id, at=at)


def folded(items: list[Admitted], erasures=None, marks=None) -> BatchFold:
    batch = BatchFold(RULES, marks or FoldMarks(), {}, erasures or Erasures(), NOW)
    for item in items:
        assert batch.fold(item) is None
    return batch


def test_fold_one_customers_events_writes_one_profile_and_one_versioned_contact():
    batch = folded([admitted(0, enrolled()), admitted(1, earned(10)), admitted(2, earned(5))])

    (write,) = batch.writes()

    assert write.customer_id == "c1"
    assert write.profile is not None
    assert write.profile.points.balance == 15
    contacts = [r for r in write.records if r["@type"] == "contact"]
    assert len(contacts) == 1
    assert version_of(contacts[0]).offset == 2
    assert batch.counts[("points.earned", "applied")] == 2


def test_fold_an_invalid_record_returns_its_reason_and_counts_it():
    record = Record(0, 0, b"c1", b'{"event_id": "e1"')
    batch = BatchFold(RULES, FoldMarks(), {}, Erasures(), NOW)

    fault = batch.fold(admit_record(record, NOW, EventWindow(), WireFormat()))

    assert fault is not None
    assert fault.record is record
    assert fault.exc is None
    assert batch.counts == {("unknown", "invalid"): 1}
    assert list(batch.writes()) == []


def test_fold_an_unreadable_profile_dead_letters_its_events_as_internal_errors():
    batch = BatchFold(RULES, FoldMarks(), {"c1": ValueError("corrupt")}, Erasures(), NOW)

    faults = [batch.fold(admitted(1, earned(10))), batch.fold(admitted(2, earned(5)))]

    for fault in faults:  # every one of the customer's events, not only the first
        assert fault is not None
        assert fault.error_class == "ValueError"
        assert fault.reason == "internal error: corrupt"
    assert batch.counts == {("unknown", "failed"): 2}
    assert list(batch.writes()) == []


def test_fold_lets_go_of_each_stored_profile_once_it_folds_the_customer():
    (stored,) = [w.profile for w in folded([admitted(0, enrolled())]).writes()]
    handed = {"c1": stored, "c2": None}
    batch = BatchFold(RULES, FoldMarks(), handed, Erasures(), NOW)

    assert batch.fold(admitted(3, earned(10))) is None

    # The read version is not held to the batch's end (a million customers: 5,000 of them).
    assert handed == {"c2": None}
    (write,) = batch.writes()
    assert write.profile is not None
    assert write.profile.points.balance == 10


def test_fold_an_erasure_drops_what_the_batch_folded_before_and_deletes_the_profile():
    batch = folded([admitted(0, enrolled()), admitted(1, earned(10)), admitted(2, erased())])

    (write,) = batch.writes()

    assert write.profile is None
    assert [r["@type"] for r in write.records] == [ERASURE_RECORD]
    assert batch.erased["c1"][:2] == (0, 2)


def test_fold_an_event_after_an_erasure_in_the_same_batch_is_not_folded():
    batch = folded([admitted(0, enrolled()), admitted(1, erased()), admitted(2, earned(10))])

    (write,) = batch.writes()

    assert write.profile is None
    assert batch.counts[("points.earned", "erased")] == 1


def test_fold_an_enrolment_after_an_erasure_starts_a_profile_after_the_erasure_record():
    batch = folded([admitted(0, enrolled()), admitted(1, erased()), admitted(2, enrolled(at=3.0))])

    (write,) = batch.writes()

    assert write.profile is not None
    assert write.records[0]["@type"] == ERASURE_RECORD
    assert write.records[1]["@type"] == "contact"
    assert batch.enrolled_again == ["c1"]


def test_fold_an_invalid_record_before_an_erasure_on_record_is_not_dead_lettered():
    batch = BatchFold(RULES, FoldMarks(), {}, Erasures({("c1", 0): 5}), NOW)
    record = Record(0, 3, b"c1", b"not json")

    fault = batch.fold(admit_record(record, NOW, EventWindow(), WireFormat()))

    assert fault is None
    assert batch.counts == {("unknown", "erased"): 1}


def test_fold_a_replayed_event_holds_back_its_custom_events_with_the_reason_replayed():
    redeemed = event_doc(
        "points.redeemed",
        {"redemption_id": "r1", "code": "SAVE10", "reward": {"name": "£10 off"}},
        at=1.0,
    )
    items = [admitted(0, enrolled()), admitted(1, redeemed)]
    live = folded(items)
    replayed = folded(items, marks=FoldMarks(replayed_until={0: 2}))

    assert any(r["@type"] == "custom_event" for w in live.writes() for r in w.records)
    assert all(r["@type"] == "contact" for w in replayed.writes() for r in w.records)
    assert replayed.suppressed.get("replayed", 0) >= 1


def test_fold_a_duplicate_changes_nothing():
    first = folded([admitted(0, enrolled())])
    (write,) = first.writes()
    batch = BatchFold(RULES, FoldMarks(), {"c1": write.profile}, Erasures(), NOW)

    assert batch.fold(admitted(0, enrolled())) is None

    assert list(batch.writes()) == []
    assert batch.counts == {("customer.enrolled", "duplicate"): 1}


def test_fold_history_folds_each_event_as_its_own_batch_to_the_same_profile():
    items = [admitted(n, doc) for n, doc in enumerate([enrolled(), earned(10), earned(5)])]
    (whole,) = folded(items).writes()

    profile, records = fold_history([item.event for item in items], RULES, NOW)

    assert profile is not None
    assert profile.points.balance == whole.profile.points.balance == 15
    assert profile.last_contact == whole.profile.last_contact
    assert [r["@type"] for r in records].count("contact") == 3  # one per batch


@pytest.mark.parametrize("value", [None, b""])
def test_admit_record_without_a_value_is_invalid(value):
    item = admit_record(Record(0, 0, b"c1", value), NOW, EventWindow(), WireFormat())

    assert item.event is None
    assert item.invalid is not None
