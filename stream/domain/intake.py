"""One raw input record → a loyalty event, or the reason it is dead-lettered.

The worker (which also folds again what `replay` rewinds) and `redrive` call `admit`, so a
record is judged by the same rules wherever it is read: the contract (`parse_event`), the Kafka key
(`check_key`) and the event-time window, and the same framing: plain JSON, or the Schema Registry
wire format (`stream.domain.wire`). Pure: the caller passes the clock and the writer schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from stream.domain.events import (
    InvalidEvent,
    LoyaltyEvent,
    check_key,
    check_record,
    parse_document,
    parse_event,
)
from stream.domain.wire import HEADER_BYTES, MAGIC, WireFormat, decode_avro, schema_id_of
from stream.errors import LoyaltyStreamError
from stream.settings import Settings

PLAIN_JSON = WireFormat()


class SchemaNotResolved(LoyaltyStreamError):
    """A framed record reached intake before its writer schema was fetched (a bug of the
    caller's: the record must be neither folded nor dead-lettered)."""


@dataclass(frozen=True, slots=True)
class EventWindow:
    """How old and how far ahead of the reader's clock an event's occurred_at may be."""

    max_age: timedelta = timedelta(days=3650)
    future_skew: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventWindow:
        return cls(settings.events.max_age, settings.events.future_skew)


def _span(delta: timedelta) -> str:
    seconds = abs(delta.total_seconds())
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} seconds"


def check_time(event: LoyaltyEvent, now: datetime, window: EventWindow) -> None:
    """Reject an event outside the window [now - max_age, now + future_skew].

    Raises:
        InvalidEvent: the reason names the bound and the setting that sets it; the distance,
            not the time itself, which is the record's value.
    """
    ahead = event.occurred_at - now  # aware datetimes: compared as instants
    if ahead > window.future_skew:
        raise InvalidEvent(
            f"occurred_at is {_span(ahead)} ahead of this worker's clock; events may be at "
            f"most {_span(window.future_skew)} ahead "
            "(STREAM_EVENTS__FUTURE_SKEW): fix the producer's clock",
            error_class="EventTimeOutOfRange",
        )
    if -ahead > window.max_age:
        raise InvalidEvent(
            f"occurred_at is {_span(ahead)} old; events may be at most {_span(window.max_age)} "
            "old (STREAM_EVENTS__MAX_AGE)",
            error_class="EventTimeOutOfRange",
        )


def read_event(
    value: bytes | None, wire: WireFormat = PLAIN_JSON, known_email: str | None = None
) -> LoyaltyEvent:
    """The event a record value holds, plain JSON or framed by a Schema Registry serializer;
    `known_email`: see `stream.domain.events.parse_document`.

    Raises:
        InvalidEvent: the record must be dead-lettered; `reason` says what was expected.
        SchemaNotResolved: a framed record whose schema `wire` lacks (never dead-letter it).
    """
    # Plain JSON first, with no more calls than before framing existed: most records are.
    if value is None or len(value) < HEADER_BYTES or value[0] != MAGIC:
        if value is not None and not wire.accept_unframed:
            raise InvalidEvent(
                "the record is not framed by a Schema Registry serializer (byte 0, then a "
                "4-byte schema id); expected a JSON Schema or Avro serializer's record, as "
                "STREAM_REGISTRY__ACCEPT_UNFRAMED is false",
                error_class="Unframed",
            )
        return parse_event(value, known_email=known_email)
    raw = check_record(value)
    schema_id = schema_id_of(raw)
    assert schema_id is not None  # framed, as checked above
    if wire.allowed_schema_ids and schema_id not in wire.allowed_schema_ids:
        raise InvalidEvent(
            f"schema id {schema_id} is not one of the allowed ids "
            f"(STREAM_REGISTRY__ALLOWED_SCHEMA_IDS: {sorted(wire.allowed_schema_ids)})",
            error_class="SchemaIdNotAllowed",
        )
    payload = raw[HEADER_BYTES:]
    if not wire.registry:
        return parse_event(
            payload,
            framing=f" after the Schema Registry header (schema id {schema_id}); without "
            "STREAM_REGISTRY__URL framed records are read as JSON Schema, Avro needs the registry",
            known_email=known_email,
        )
    schema = wire.schemas.get(schema_id)
    if schema is None:
        raise SchemaNotResolved(f"schema id {schema_id} was not fetched before intake")
    if schema.problem is not None:
        kind = "UnknownSchemaId" if schema.kind is None else "UnreadableSchema"
        raise InvalidEvent(schema.problem, error_class=kind)
    if schema.avro is None:
        return parse_event(
            payload,
            framing=f" after the JSON Schema header (id {schema_id})",
            known_email=known_email,
        )
    try:
        doc = decode_avro(payload, schema.avro)
    except ValueError as exc:
        raise InvalidEvent(
            f"the Avro payload does not decode with its writer schema (id {schema_id}): {exc}; "
            "expected one datum of that schema, as an AvroSerializer writes it",
            error_class="UndecodableAvro",
        ) from None
    return parse_document(doc, expected="an Avro record", known_email=known_email)


def admit(
    value: bytes | None,
    key: bytes | None,
    now: datetime,
    window: EventWindow,
    wire: WireFormat = PLAIN_JSON,
    known_email: str | None = None,
) -> LoyaltyEvent:
    """The event a raw record holds, checked exactly as the worker checks it.

    `known_email`: the address the key's customer's stored profile holds, if any (it passed
    the email check when folded; see `stream.domain.events.parse_document`).

    Raises:
        InvalidEvent: the record must be dead-lettered; `reason` names the field and the rule.
        SchemaNotResolved: see `read_event`.
    """
    event = read_event(value, wire, known_email)
    check_key(event, key)
    check_time(event, now, window)
    return event
