"""Confluent's Schema Registry wire format: which records carry it, and their payloads decoded.

A serializer of Confluent's (or of any registry speaking its protocol) frames a value as byte 0,
the writer's schema id (4 bytes, big-endian), then the payload: JSON for JSON Schema, Avro
binary for Avro. Pure: the runtime fetches the writer schemas (stream.runtime.schema_registry)
and hands them in; a plain JSON object never starts with byte 0, so framed and unframed records
tell themselves apart.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import fastavro
import orjson
from fastavro.types import Schema

from stream.settings import Settings

MAGIC = 0
HEADER_BYTES = 5
SchemaKind = Literal["AVRO", "JSON", "PROTOBUF"]


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A schema the registry holds under `schema_id`, ready to decode with.

    `problem` is set instead when records written with it cannot be read: an id the registry
    does not know, a kind this service does not read, or an Avro schema that does not parse.
    """

    schema_id: int
    kind: SchemaKind | None
    avro: Schema | None = None
    problem: str | None = None

    @classmethod
    def of(cls, schema_id: int, kind: str, text: str) -> WriterSchema:
        """The schema as the registry returned it (`schemaType`, absent for Avro, and `schema`)."""
        if kind == "JSON":
            return cls(schema_id, "JSON")
        if kind != "AVRO":
            return cls(
                schema_id,
                "PROTOBUF" if kind == "PROTOBUF" else None,
                problem=f"schema id {schema_id} is a {kind[:16]} schema; expected Avro or JSON "
                "Schema (send loyalty events with an AvroSerializer or a JSONSerializer)",
            )
        try:
            parsed = fastavro.parse_schema(orjson.loads(text))
        except Exception as exc:  # fastavro raises several types for a schema it refuses
            return cls(
                schema_id,
                "AVRO",
                problem=f"schema id {schema_id} is not an Avro schema this service can read "
                f"({type(exc).__name__}; schema references are not followed)",
            )
        return cls(schema_id, "AVRO", avro=parsed)

    @classmethod
    def unknown(cls, schema_id: int) -> WriterSchema:
        return cls(
            schema_id,
            None,
            problem=f"schema id {schema_id} is not in the Schema Registry "
            "(STREAM_REGISTRY__URL); expected the id of a schema the producer's serializer "
            "registered there",
        )


@dataclass(frozen=True, slots=True)
class WireFormat:
    """Which records intake accepts (README "The event contract", STREAM_REGISTRY__*)."""

    accept_unframed: bool = True
    allowed_schema_ids: frozenset[int] = frozenset()
    # Without a registry a framed payload is read as JSON (a JSON Schema serializer's).
    registry: bool = False
    schemas: Mapping[int, WriterSchema] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> WireFormat:
        registry = settings.registry
        return cls(
            registry.accept_unframed,
            frozenset(registry.allowed_schema_ids),
            registry.url is not None,
        )

    def with_schemas(self, schemas: Mapping[int, WriterSchema]) -> WireFormat:
        return WireFormat(self.accept_unframed, self.allowed_schema_ids, self.registry, schemas)


def schema_id_of(raw: bytes | None) -> int | None:
    """The writer's schema id of a framed record; None for any other."""
    if raw is None or len(raw) < HEADER_BYTES or raw[0] != MAGIC:
        return None
    return int.from_bytes(raw[1:HEADER_BYTES], "big")


def schema_ids(values: Iterable[bytes | None]) -> set[int]:
    """The distinct schema ids of the framed values among `values`."""
    # Inlined: runs once per record of every batch.
    return {
        int.from_bytes(raw[1:HEADER_BYTES], "big")
        for raw in values
        if raw is not None and len(raw) >= HEADER_BYTES and raw[0] == MAGIC
    }


def decode_avro(payload: bytes, schema: Schema) -> Any:
    """The datum `payload` holds, written with `schema`.

    Raises:
        ValueError: the bytes are not one datum of that schema (named without the bytes).
    """
    buffer = io.BytesIO(payload)
    try:
        datum = fastavro.schemaless_reader(buffer, schema, None)
    except Exception as exc:  # fastavro raises EOFError, UnicodeDecodeError, IndexError, ...
        raise ValueError(type(exc).__name__) from None
    if buffer.tell() != len(payload):
        raise ValueError(f"{len(payload) - buffer.tell()} bytes left after the datum")
    return without_nulls(datum)


def without_nulls(value: Any) -> Any:
    """The value with null record fields dropped: Avro writes an absent optional field as null,
    and the contract reads null and absent alike only where a field is optional."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value
