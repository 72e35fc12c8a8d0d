"""A fold batch's outbox messages: each partition's records in a few messages, not one per customer.

Each message costs the producer about the same whatever it holds, and one per changed customer
would cost more than its contact mapping and its changelog write together. The
pusher reads records, not messages (it coalesces by record identity and keeps contact
versions per outbox partition and contact id), so a message may carry several customers'
records as long as every customer's records land in the partition that `backfill` and
`redrive` reach by keying a record with the customer id: the one Kafka's default partitioner
gives that key, computed here. A customer's records keep their order: a partition's messages
are sent in order, and a customer's records stay together inside one unless they alone are
larger than a message may be (one customer's burst), when they go in consecutive messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from stream.domain.records import encode
from stream.domain.sizes import RECORD_OVERHEAD, header_size
from stream.runtime.topic_configs import KAFKA_MAX_MESSAGE_BYTES
from stream.runtime.topology import default_partition

OCCURRED_AT_HEADER = "loyalty.occurred_at"
# A message's bound, record overhead and headers included, unless the outbox topic's own
# max.message.bytes is smaller: larger messages would save nothing (a message costs the
# producer about the same whatever it holds).
MAX_MESSAGE_BYTES = 512 * 1024

Headers = list[tuple[str, bytes]]


def occurred_at(headers: Iterable[tuple[str, bytes]] | None) -> list[bytes]:
    """The occurred-at header values of an outbox message: one per customer whose records it
    carries, none for a backfilled or redriven record."""
    return [raw for name, raw in headers or () if name == OCCURRED_AT_HEADER]


class OutboxBatch:
    """The outbox records of one fold batch, grouped by the partition of their customer."""

    def __init__(self, partitions: int, max_message_bytes: int = KAFKA_MAX_MESSAGE_BYTES) -> None:
        """`max_message_bytes`: the outbox topic's max.message.bytes."""
        if partitions < 1:
            raise ValueError("no outbox partitions known (does the outbox topic exist?)")
        self._partitions = partitions
        # What a message's JSON list and headers may take (the list's brackets included).
        self._room = min(MAX_MESSAGE_BYTES, max_message_bytes) - RECORD_OVERHEAD
        # partition -> parts of customers' encoded record lists, and the time of each one's
        # latest event (one header per part, so push latency is observed per customer as before)
        self._parts: dict[int, list[tuple[bytes, bytes]]] = {}

    def add(self, customer_id: str, records: list[dict[str, Any]], occurred: datetime) -> None:
        """Queue a customer's records of the batch, in order."""
        if not records:
            return
        partition = default_partition(customer_id.encode(), self._partitions)
        stamp = occurred.isoformat().encode()
        # "[a,b]" -> "a,b": joined with other customers' records into one list per message.
        inner = encode(records)[1:-1]
        if _cost(inner, stamp) + 2 <= self._room or len(records) == 1:
            parts = [inner]
        else:
            # One customer's burst (thousands of events in one batch) alone exceeds a message.
            parts = _pack([encode(record) for record in records], stamp, self._room)
        self._parts.setdefault(partition, []).extend((part, stamp) for part in parts)

    def messages(self) -> Iterator[tuple[int, bytes, Headers]]:
        """(partition, value, headers) per message: a JSON list of records, which with its
        headers fits MAX_MESSAGE_BYTES and the outbox's max.message.bytes."""
        for partition, parts in self._parts.items():
            chunk: list[bytes] = []
            headers: Headers = []
            size = 2
            for inner, occurred in parts:
                cost = _cost(inner, occurred)
                if chunk and size + cost > self._room:
                    yield partition, b"[" + b",".join(chunk) + b"]", headers
                    chunk, headers, size = [], [], 2
                chunk.append(inner)
                headers.append((OCCURRED_AT_HEADER, occurred))
                size += cost
            yield partition, b"[" + b",".join(chunk) + b"]", headers


def _cost(inner: bytes, stamp: bytes) -> int:
    """What a part adds to a message: its records, a comma, and its occurred-at header."""
    return len(inner) + 1 + header_size(OCCURRED_AT_HEADER, stamp)


def _pack(encoded: list[bytes], stamp: bytes, room: int) -> list[bytes]:
    """Consecutive records joined into parts that each fit a message alone."""
    parts: list[bytes] = []
    chunk: list[bytes] = []
    size = 2
    for record in encoded:
        cost = _cost(record, stamp)
        if chunk and size + cost > room:
            parts.append(b",".join(chunk))
            chunk, size = [], 2
        chunk.append(record)
        size += cost
    parts.append(b",".join(chunk))
    return parts
