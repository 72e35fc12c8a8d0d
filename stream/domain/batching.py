"""Plan push requests from outbox records: coalesce, split by type, chunk; pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stream.domain.erasure import ERASURE_RECORD
from stream.domain.lists import carry_lists
from stream.domain.records import (
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_REQUEST,
    Version,
    encode,
    version_of,
)

# Contacts go before custom events so a campaign finds the contact's newest fields.
TYPE_ORDER = ("contact", "custom_event")


@dataclass(frozen=True, slots=True)
class Plan:
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    too_large: list[dict[str, Any]] = field(default_factory=list)
    coalesced: int = 0


def _identity(record: dict[str, Any]) -> tuple[str, str, str]:
    return (record.get("@type", ""), record.get("@collection", ""), str(record.get("id", "")))


def plan_requests(
    records: list[dict[str, Any]], *, max_records: int = MAX_RECORDS_PER_REQUEST
) -> Plan:
    """Latest record per (type, collection, id) wins; one type per request; ≤ max_records."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        latest[_identity(record)] = record
    by_type: dict[str, list[dict[str, Any]]] = {}
    too_large = []
    for record in latest.values():
        if len(encode(record)) > MAX_RECORD_BYTES:
            too_large.append(record)
        else:
            by_type.setdefault(str(record.get("@type")), []).append(record)
    order = sorted(by_type, key=lambda t: (TYPE_ORDER.index(t) if t in TYPE_ORDER else 99, t))
    requests = [
        group[start : start + max_records]
        for record_type in order
        for group in [by_type[record_type]]
        for start in range(0, len(group), max_records)
    ]
    return Plan(requests=requests, too_large=too_large, coalesced=len(records) - len(latest))


@dataclass(frozen=True, slots=True)
class Erasure:
    """A customer erased in a round: the pusher forgets the contact versions it keeps of them."""

    partition: int  # the outbox partition the erasure record came in
    customer_id: str
    # The erasure record's contact id and those of the customer's contacts dropped from the
    # round: every contact whose version may be stored for the customer.
    contact_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Coalesced:
    """One round of outbox records reduced to what is worth sending."""

    records: list[dict[str, Any]]
    # (outbox partition, contact id) -> the version of the contact kept for it
    versions: dict[tuple[int, str], Version]
    superseded: int  # replaced by a newer record of the same identity in the round
    stale: int  # contacts older than one already delivered: never sent
    erasures: list[Erasure] = field(default_factory=list)
    erased: int = 0  # a customer's records followed by their erasure in the round: never sent
    # Erasure records that name no customer: never sent, and no one to forget.
    unusable: list[dict[str, Any]] = field(default_factory=list)


def _customer(record: dict[str, Any]) -> Any:
    """The customer a contact or a custom event is about (custom events name the account)."""
    if record.get("@type") == "custom_event":
        return record.get("identity_account_id")
    return record.get("customer_id")


def _erase(
    latest: dict[tuple[str, str, str], tuple[int, dict[str, Any]]],
    partition: int,
    customer_id: str,
    contact_id: Any,
) -> tuple[Erasure, int]:
    """Drop the customer's records held so far in the round from `latest`; return the erasure
    (with every contact id whose version may be stored for them) and how many were dropped."""
    gone = [key for key, (_, held) in latest.items() if _customer(held) == customer_id]
    if isinstance(contact_id, str) and contact_id:
        gone.extend(key for key in latest if key[0] == "contact" and key[2] == contact_id)
    contact_ids = {contact_id} if isinstance(contact_id, str) and contact_id else set()
    dropped = 0
    for key in dict.fromkeys(gone):
        del latest[key]
        dropped += 1
        if key[0] == "contact":
            contact_ids.add(key[2])
    return Erasure(partition, customer_id, tuple(sorted(contact_ids))), dropped


def _hold(
    latest: dict[tuple[str, str, str], tuple[int, dict[str, Any]]],
    identity: tuple[str, str, str],
    partition: int,
    record: dict[str, Any],
    version: Version | None,
) -> bool:
    """Hold `record` for its identity in `latest`, unless the one held is newer (which then
    takes the record's lists); return whether one was held already."""
    held = latest.get(identity)
    if held is None:
        latest[identity] = (partition, record)
        return False
    held_version = version_of(held[1])
    if version is not None and held_version is not None and version < held_version:
        latest[identity] = (held[0], carry_lists(record, held[1]))
    else:
        latest[identity] = (partition, carry_lists(held[1], record))
    return True


def coalesce(
    entries: Iterable[tuple[int, dict[str, Any]]],
    delivered: Callable[[int, str], Version | None],
) -> Coalesced:
    """Keep the newest contact per customer and each distinct custom event of a round.

    `entries` are (outbox partition, record) in outbox order; `delivered(partition, id)` is the
    newest contact version already delivered for that id. A versioned contact never replaces a
    newer one, whether delivered or waiting in the round, whatever order they arrived in.

    An erasure record (stream.domain.erasure.erasure_record) is never sent: the customer's
    records before it in the round are dropped, and the versions delivered of their contacts
    no longer count, so a re-enrolment after it is sent whatever its version.
    """
    latest: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
    superseded = stale = erased = 0
    erasures: list[Erasure] = []
    unusable: list[dict[str, Any]] = []
    forgotten: set[tuple[int, str]] = set()
    for partition, record in entries:
        if record.get("@type") == ERASURE_RECORD:
            customer_id = record.get("customer_id")
            if not isinstance(customer_id, str) or not customer_id:
                unusable.append(record)
                continue
            erasure, dropped = _erase(latest, partition, customer_id, record.get("contact_id"))
            erased += dropped
            forgotten.update((partition, cid) for cid in erasure.contact_ids)
            erasures.append(erasure)
            continue
        identity = _identity(record)
        version = version_of(record)
        if version is not None and (partition, identity[2]) not in forgotten:
            known = delivered(partition, identity[2])
            if known is not None and version < known:
                stale += 1
                continue
        if _hold(latest, identity, partition, record, version):
            superseded += 1
    versions = {
        (partition, identity[2]): version
        for identity, (partition, record) in latest.items()
        if (version := version_of(record)) is not None
    }
    return Coalesced(
        records=[record for _, record in latest.values()],
        versions=versions,
        superseded=superseded,
        stale=stale,
        erasures=erasures,
        erased=erased,
        unusable=unusable,
    )
