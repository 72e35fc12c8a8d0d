"""Dead letters: the original bytes, unchanged, with the reason and origin in headers.

Keeping the value byte-for-byte means `redrive` can re-publish a fixed record as it was, and
any Kafka tool can read the reason (`dlq.reason` header) without knowing our formats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stream.domain.records import encode

HEADER_PREFIX = "dlq."
MAX_HEADER_CHARS = 4000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that could not be processed, and why."""

    stage: str  # "parse" (input event) or "push" (Ometria record)
    error_class: str
    reason: str
    key: bytes | None
    value: bytes | None
    failed_at: datetime
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    original_headers: Sequence[tuple[str, bytes]] = ()
    details: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_record(
        cls, record: Any, *, stage: str, error_class: str, reason: str, failed_at: datetime
    ) -> DeadLetter:
        """The dead letter of a Kafka record (aiokafka's or Faust's): its bytes, headers and
        position."""
        headers = record.headers or []
        items = headers.items() if isinstance(headers, dict) else headers
        return cls(
            stage=stage,
            error_class=error_class,
            reason=reason,
            key=record.key,
            value=record.value,
            failed_at=failed_at,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            original_headers=[(str(k), bytes(v or b"")) for k, v in items],
        )

    @classmethod
    def of_ometria_record(
        cls,
        record: Mapping[str, Any],
        *,
        error_class: str,
        reason: str,
        failed_at: datetime,
        details: Mapping[str, str] | None = None,
    ) -> DeadLetter:
        """The dead letter of an Ometria record the push refused, keyed by its customer."""
        key = record.get("identity_account_id") or record.get("id", "")
        return cls(
            stage="push",
            error_class=error_class,
            reason=reason,
            key=str(key).encode(),
            value=encode(dict(record)),
            failed_at=failed_at,
            details=details or {},
        )

    def headers(self) -> list[tuple[str, bytes]]:
        """The original headers followed by the `dlq.*` ones."""
        ours = {
            "stage": self.stage,
            "error_class": self.error_class,
            "reason": self.reason,
            "failed_at": self.failed_at.isoformat(),
            "source.topic": self.source_topic,
            "source.partition": self.source_partition,
            "source.offset": self.source_offset,
            **self.details,
        }
        extra = [
            (HEADER_PREFIX + name, str(value)[:MAX_HEADER_CHARS].encode("utf-8"))
            for name, value in ours.items()
            if value is not None
        ]
        kept = [(k, v) for k, v in self.original_headers if not k.startswith(HEADER_PREFIX)]
        return kept + extra


def read_headers(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """The `dlq.*` headers of a dead letter, prefix removed."""
    return {
        name[len(HEADER_PREFIX) :]: value.decode("utf-8", "replace")
        for name, value in headers
        if name.startswith(HEADER_PREFIX)
    }
