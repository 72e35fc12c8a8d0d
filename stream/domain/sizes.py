"""How many bytes a Kafka record takes, against a topic's max.message.bytes.

The broker refuses a record batch larger than the topic's max.message.bytes; a record alone in
its batch is its key, value and headers plus the bounds below. Counting them here lets a writer
split or cut a record before the broker refuses it (a refused write stops the worker, which then
reads the same input again).
"""

from __future__ import annotations

from collections.abc import Sequence

# Upper bounds of what Kafka's record format (v2) adds around a record alone in its batch: the
# batch header (61 bytes) and the record's varints; and each header's two length varints.
RECORD_OVERHEAD = 128
HEADER_OVERHEAD = 10


def header_size(name: str, value: bytes) -> int:
    """At least the bytes one header adds to a record."""
    return HEADER_OVERHEAD + len(name.encode()) + len(value)


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """At least the bytes a record alone in its batch takes on the broker."""
    return (
        RECORD_OVERHEAD
        + len(key or b"")
        + len(value or b"")
        + sum(header_size(name, raw) for name, raw in headers)
    )
