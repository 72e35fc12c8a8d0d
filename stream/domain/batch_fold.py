"""One batch of input records folded into its customers' profiles and outbox records; pure.

The fold agent (stream.runtime.agents) reads what the fold needs (the records, each customer's
stored profile, the erasures on record) and writes what it returns; the golden cases run the
same steps (`fold_history`). A batch's steps, in order: `admit_record` for every record, the
profiles of the admitted customers read, `BatchFold.fold` for every admitted record in offset
order, then `BatchFold.writes` once per customer changed or erased.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from stream.domain.erasure import ERASED, AfterErasure, after_erasure, erasure_for
from stream.domain.events import InvalidEvent, LoyaltyEvent
from stream.domain.intake import EventWindow, SchemaNotResolved, admit
from stream.domain.profile import Profile
from stream.domain.records import with_version
from stream.domain.sync import SyncRules, apply_event, contact_update
from stream.domain.wire import WireFormat


class InputRecord(Protocol):
    """What the fold reads of an input record (a Kafka message)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class ErasureLookup(Protocol):
    """The erasures on record (stream.runtime.erasures.ErasureIndex)."""

    def __len__(self) -> int: ...
    def erased_at(self, customer_id: str, partition: int) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Admitted:
    """An input record with the event it holds, or why it holds none."""

    record: InputRecord
    event: LoyaltyEvent | None
    invalid: InvalidEvent | None = None
    failed: Exception | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """A record to dead-letter: its error class and reason (`exc`: a bug's, to log)."""

    record: InputRecord
    error_class: str
    reason: str
    exc: Exception | None = None


@dataclass(frozen=True, slots=True)
class CustomerWrite:
    """What a batch writes for one customer: the profile (None deletes it) and the records."""

    customer_id: str
    partition: int
    profile: Profile | None
    records: list[dict[str, Any]]
    occurred: datetime  # the latest event's occurred_at (the batch's clock for an erasure)


@dataclass(frozen=True, slots=True)
class FoldMarks:
    """What the last replay left (stream.runtime.replay_mark): each input partition's end
    offset when it ran, and the generation of the contact versions mapped since."""

    replayed_until: Mapping[int, int] = field(default_factory=dict)
    version_generation: int = 0


def admit_record(
    record: InputRecord,
    now: datetime,
    window: EventWindow,
    wire: WireFormat,
    known_email: str | None = None,
) -> Admitted:
    """The event `record` holds, or the reason it is dead-lettered (a bug's included);
    `known_email`: see `stream.domain.intake.admit`."""
    try:
        event = admit(record.value, record.key, now, window, wire, known_email)
        return Admitted(record, event)
    except InvalidEvent as exc:
        return Admitted(record, None, invalid=exc)
    except SchemaNotResolved:
        raise  # neither folded nor dead-lettered: the batch must not be stored
    except Exception as exc:
        # A bug must not lose the event: keep its bytes with the error for a redrive.
        return Admitted(record, None, failed=exc)


class BatchFold:
    """The working state of one batch: the profiles it touched and the records it queued."""

    def __init__(
        self,
        rules: SyncRules,
        marks: FoldMarks,
        profiles: dict[str, Profile | Exception | None],
        erasures: ErasureLookup,
        now: datetime,
    ) -> None:
        """`profiles`: each admitted customer's stored profile, or the error reading it; the
        batch takes each profile out of the dict as it folds the customer."""
        self._rules = rules
        self._marks = marks
        self._stored = profiles
        self._erasures = erasures
        self._now = now
        self.profiles: dict[str, Profile | None] = {}
        self.changed: dict[str, datetime] = {}  # customer id -> occurred_at of its latest event
        self.partition: dict[str, int] = {}  # customer id -> the partition of its records
        self.records: dict[str, list[dict[str, Any]]] = {}  # customer id -> its custom events
        # (type, outcome) -> events: counted once per batch, not once per event.
        self.counts: dict[tuple[str, str], int] = {}
        self.suppressed: dict[str, int] = {}  # reason -> custom events held back
        # customer id -> (its erasure's partition and offset, the outbox record that says so)
        self.erased: dict[str, tuple[int, int, dict[str, Any]]] = {}
        self.enrolled_again: list[str] = []  # customers whose new profile follows an erasure
        # (customer id, partition) -> offset: this batch's erasures, which its later records see
        self._erasing: dict[tuple[str, int], int] = {}

    def count(self, event_type: str, outcome: str) -> None:
        key = (event_type, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def fold(self, admitted: Admitted) -> Fault | None:
        """Fold one admitted record; the fault to dead-letter it with, if it cannot be."""
        record = admitted.record
        if admitted.failed is not None:
            return self._failed(record, admitted.failed)
        try:
            return self._fold(admitted)
        except Exception as exc:
            return self._failed(record, exc)

    def _failed(self, record: InputRecord, exc: Exception) -> Fault:
        self.count("unknown", "failed")
        return Fault(record, type(exc).__name__, f"internal error: {exc}", exc)

    def _fold(self, admitted: Admitted) -> Fault | None:
        record, event = admitted.record, admitted.event
        if event is None:
            if self._erased_before(record):
                self.count("unknown", "erased")  # read again: dead-lettered the first time
                return None
            self.count("unknown", "invalid")
            assert admitted.invalid is not None  # no event: invalid or failed
            return Fault(record, admitted.invalid.error_class, admitted.invalid.reason)
        customer_id = event.customer.id
        before = self._profile(customer_id)
        if not self._past_erasure(event, before, record):
            self.count(event.type, "erased")
            return None
        if event.type == ERASED:
            self._erase(customer_id, before, record)
        else:
            self._apply(event, before, record)
        return None

    def _profile(self, customer_id: str) -> Profile | None:
        """The customer's profile as folded so far in the batch."""
        if customer_id not in self.profiles:
            stored = self._stored.get(customer_id)
            if isinstance(stored, Exception):
                raise stored  # again for each of the customer's events
            # Taken out: once folded, a profile read from the store (at a million customers,
            # nearly every one) is garbage, not a third version held until the batch ends.
            self._stored.pop(customer_id, None)
            self.profiles[customer_id] = stored
        return self.profiles[customer_id]

    def _erased_at(self, customer_id: str, partition: int) -> int | None:
        """The offset of the customer's latest erasure in `partition`, this batch's included."""
        on_record = self._erasures.erased_at(customer_id, partition)
        erasing = self._erasing.get((customer_id, partition))
        if erasing is None:
            return on_record
        return erasing if on_record is None else max(on_record, erasing)

    def _erased_before(self, record: InputRecord) -> bool:
        """Whether a record that is not an event is keyed by a customer erased after it."""
        if record.key is None or not (len(self._erasures) or self._erasing):
            return False
        try:
            customer_id = record.key.decode()
        except UnicodeDecodeError:
            return False
        erased_at = self._erased_at(customer_id, record.partition)
        return erased_at is not None and record.offset < erased_at

    def _past_erasure(
        self, event: LoyaltyEvent, before: Profile | None, record: InputRecord
    ) -> bool:
        """Whether the event folds, judged against the customer's erasure (if any)."""
        if before is not None and event.type != ERASED:
            # Looked up for customers without a profile only (and erasures): a customer erased
            # has none, until an enrolment after the erasure starts one.
            return True
        erased_at = self._erased_at(event.customer.id, record.partition)
        if erased_at is None:
            return True
        offset = before.input_offset if before is not None else None
        if after_erasure(event, offset, record.offset, erased_at) is not AfterErasure.FOLD:
            return False
        if before is None and event.type != ERASED:
            self.enrolled_again.append(event.customer.id)
        return True

    def _erase(self, customer_id: str, before: Profile | None, record: InputRecord) -> None:
        """Forget the customer: nothing folded for them so far in the batch is written or sent."""
        self.count(ERASED, "applied")
        self.erased[customer_id] = (
            record.partition,
            record.offset,
            erasure_for(customer_id, before),
        )
        key = (customer_id, record.partition)
        self._erasing[key] = max(record.offset, self._erasing.get(key, record.offset))
        self.profiles[customer_id] = None
        self.partition[customer_id] = record.partition
        self.changed.pop(customer_id, None)
        self.records.pop(customer_id, None)

    def _apply(self, event: LoyaltyEvent, before: Profile | None, record: InputRecord) -> None:
        # An event the last replay folds again fired its campaigns the first time it was folded.
        replayed = record.offset < self._marks.replayed_until.get(record.partition, 0)
        outcome = apply_event(
            before, event, self._rules, self._now, offset=record.offset, replayed=replayed
        )
        if not outcome.applied:
            self.count(event.type, "duplicate")
            return
        self.count(event.type, "applied")
        for reason in outcome.suppressed:
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
        customer_id = event.customer.id
        self.profiles[customer_id] = outcome.profile
        self.changed[customer_id] = event.occurred_at
        self.partition[customer_id] = record.partition
        if outcome.records:
            self.records.setdefault(customer_id, []).extend(outcome.records)

    def writes(self) -> Iterator[CustomerWrite]:
        """What to write per customer: the erased first, then the changed with their contacts.

        A generator: the caller may let its loop run between customers (a contact of a large
        mapping costs milliseconds).
        """
        for customer_id, (partition, _, erasure) in self.erased.items():
            if customer_id not in self.changed:  # else an enrolment after it: that comes below
                yield CustomerWrite(customer_id, partition, None, [erasure], self._now)
        for customer_id, occurred in self.changed.items():
            yield self._changed(customer_id, occurred)

    def _changed(self, customer_id: str, occurred: datetime) -> CustomerWrite:
        profile = self.profiles[customer_id]
        assert profile is not None  # changed means folded
        profile, contact = contact_update(profile, self._rules)
        records = (
            [with_version(contact, profile.input_offset, self._marks.version_generation)]
            if contact is not None
            else []
        )
        records += self.records.get(customer_id, [])
        if customer_id in self.erased:  # the pusher forgets what came before, then this
            records.insert(0, self.erased[customer_id][2])
        return CustomerWrite(customer_id, self.partition[customer_id], profile, records, occurred)


@dataclass(frozen=True, slots=True)
class _Record:
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None


class _HistoryErasures:
    """The erasures of one customer's history, by partition, as the worker's index keeps them."""

    def __init__(self) -> None:
        self._at: dict[tuple[str, int], int] = {}

    def __len__(self) -> int:
        return len(self._at)

    def erased_at(self, customer_id: str, partition: int) -> int | None:
        return self._at.get((customer_id, partition))

    def add(self, customer_id: str, partition: int, offset: int) -> None:
        self._at[(customer_id, partition)] = offset


def fold_history(
    events: Iterable[LoyaltyEvent], rules: SyncRules, now: datetime
) -> tuple[Profile | None, list[dict[str, Any]]]:
    """One customer's events, each its own batch as the worker folds it: the profile after
    them and every outbox record their batches queue, in order (golden cases, bench data).

    The events sit at offsets 0, 1, … of partition 0; an erasure among them holds for the
    events that follow it, as the worker's erasure index keeps it.
    """
    profile: Profile | None = None
    records: list[dict[str, Any]] = []
    erasures = _HistoryErasures()
    for offset, event in enumerate(events):
        customer_id = event.customer.id
        batch = BatchFold(rules, FoldMarks(), {customer_id: profile}, erasures, now)
        fault = batch.fold(Admitted(_Record(0, offset), event))
        if fault is not None:
            raise fault.exc or ValueError(fault.reason)
        for write in batch.writes():
            profile = write.profile
            records.extend(write.records)
        for erased, (partition, at, _) in batch.erased.items():
            erasures.add(erased, partition, at)
    return profile, records
