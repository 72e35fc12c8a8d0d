"""Plan push requests from outbox records: coalesce, split by type, chunk; pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.ometria.records import MAX_RECORD_BYTES, MAX_RECORDS_PER_REQUEST, encode

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
