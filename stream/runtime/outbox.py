"""A fold batch's outbox messages: each partition's records in a few messages, not one per customer.

Each message costs the producer about the same whatever it holds, and a batch used to send one
per changed customer: more than its contact mapping and its changelog write together. The
pusher reads records, not messages (it coalesces by record identity and keeps contact
versions per outbox partition and contact id), so a message may carry several customers'
records as long as every customer's records land in the partition that `backfill` and
`redrive` reach by keying a record with the customer id: the one Kafka's default partitioner
gives that key, computed here. A customer's records keep their order: a partition's messages
are sent in order, and a customer's records stay together inside one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from stream.domain.records import encode
from stream.runtime.topology import default_partition

OCCURRED_AT_HEADER = "loyalty.occurred_at"
# Well below the broker's default message.max.bytes (1 MiB) and the producer's request size.
MAX_MESSAGE_BYTES = 512 * 1024

Headers = list[tuple[str, bytes]]


def occurred_at(headers: Iterable[tuple[str, bytes]] | None) -> list[bytes]:
    """The occurred-at header values of an outbox message: one per customer whose records it
    carries, none for a backfilled or redriven record."""
    return [raw for name, raw in headers or () if name == OCCURRED_AT_HEADER]


class OutboxBatch:
    """The outbox records of one fold batch, grouped by the partition of their customer."""

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("no outbox partitions known (does the outbox topic exist?)")
        self._partitions = partitions
        # partition -> the customers' encoded record lists, and the time of each one's latest
        # event (one header per customer, so push latency is observed per customer as before)
        self._parts: dict[int, list[tuple[bytes, bytes]]] = {}

    def add(self, customer_id: str, records: list[dict[str, Any]], occurred: datetime) -> None:
        """Queue a customer's records of the batch, in order."""
        if not records:
            return
        partition = default_partition(customer_id.encode(), self._partitions)
        # "[a,b]" -> "a,b": joined with other customers' records into one list per message.
        inner = encode(records)[1:-1]
        self._parts.setdefault(partition, []).append((inner, occurred.isoformat().encode()))

    def messages(self) -> Iterator[tuple[int, bytes, Headers]]:
        """(partition, value, headers) per message: a JSON list of records, at most
        MAX_MESSAGE_BYTES unless one customer's records alone are larger."""
        for partition, parts in self._parts.items():
            chunk: list[bytes] = []
            headers: Headers = []
            size = 0
            for inner, occurred in parts:
                if chunk and size + len(inner) > MAX_MESSAGE_BYTES:
                    yield partition, b"[" + b",".join(chunk) + b"]", headers
                    chunk, headers, size = [], [], 0
                chunk.append(inner)
                headers.append((OCCURRED_AT_HEADER, occurred))
                size += len(inner) + 1
            yield partition, b"[" + b",".join(chunk) + b"]", headers
