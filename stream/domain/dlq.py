"""Dead letters: the original bytes, unchanged, with the reason and origin in headers.

Keeping the value byte-for-byte means `redrive` can re-publish a fixed record as it was, and
any Kafka tool can read the reason (`dlq.reason` header) without knowing our formats. Only a
record larger than the dead-letter topic takes is cut (`DeadLetter.fitted`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from stream.domain.records import encode
from stream.domain.sizes import record_size
from stream.errors import ConfigurationError

HEADER_PREFIX = "dlq."
MAX_HEADER_CHARS = 4000


class LetterTooLarge(ConfigurationError):
    """Even cut to its key and our headers, a dead letter is larger than its topic takes."""


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

    def fitted(self, max_bytes: int) -> DeadLetter:
        """This letter, cut if needed to fit a topic that takes records of `max_bytes` at most.

        A record too large to dead-letter would stop the stream for good (the worker stops
        before committing past it and reads it again). Cut, the letter keeps the start of the
        value, says so (`dlq.value_truncated`, `dlq.value_size`: the original length), and
        still names the record's source topic, partition and offset, where the whole of it
        stays for the topic's retention. The original headers go too when even the key and an
        empty value do not fit with them.

        Raises:
            LetterTooLarge: the key alone (with the `dlq.*` headers) does not fit.
        """
        if record_size(self.key, self.value, self.headers()) <= max_bytes:
            return self
        value = self.value or b""
        cut = replace(
            self, details={**self.details, "value_truncated": "true", "value_size": str(len(value))}
        )
        bare = replace(
            cut,
            original_headers=(),
            details={**cut.details, "headers_dropped": str(len(self.original_headers))},
        )
        for candidate in (cut, bare) if self.original_headers else (cut,):
            room = max_bytes - record_size(candidate.key, b"", candidate.headers())
            if room >= 0:
                return replace(candidate, value=value[:room])
        raise LetterTooLarge(
            f"a dead letter's key and headers alone exceed the {max_bytes} bytes its topic "
            "takes (max.message.bytes): raise the dead-letter topic's max.message.bytes"
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
