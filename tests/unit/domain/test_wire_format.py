"""Records framed by Confluent's serializers (byte 0, a 4-byte schema id, the payload)."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime

import fastavro
import orjson
import pytest

from stream.domain.events import InvalidEvent
from stream.domain.intake import EventWindow, SchemaNotResolved, admit
from stream.domain.wire import WireFormat, WriterSchema, schema_id_of, schema_ids
from stream.settings import load_settings
from tests.support import paths
from tests.support.events import event_doc

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AVSC = paths.SCHEMAS / "points.earned.avsc"
AVRO_TEXT = AVSC.read_text()


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def avro_bytes(doc: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(orjson.loads(AVRO_TEXT)), doc)
    return buffer.getvalue()


def registry_wire(**schemas: WriterSchema) -> WireFormat:
    return WireFormat(registry=True, schemas={s.schema_id: s for s in schemas.values()})


def earned() -> dict:
    return event_doc("points.earned", {"points": 5, "action": "placed_order"}, email="a@b.co")


def test_json_schema_framed_record_is_admitted_like_plain_json():
    doc = event_doc("points.earned", {"points": 5})
    plain = admit(orjson.dumps(doc), b"c1", NOW, EventWindow())
    event = admit(framed(7, orjson.dumps(doc)), b"c1", NOW, EventWindow())
    assert event == plain


def test_avro_framed_record_is_admitted_like_plain_json():
    doc = earned()
    wire = registry_wire(avro=WriterSchema.of(3, "AVRO", AVRO_TEXT))
    event = admit(framed(3, avro_bytes(doc)), b"c1", NOW, EventWindow(), wire)
    assert event == admit(orjson.dumps(doc), b"c1", NOW, EventWindow())


def test_json_schema_id_from_the_registry_strips_the_header():
    doc = earned()
    wire = registry_wire(json=WriterSchema.of(9, "JSON", "{}"))
    event = admit(framed(9, orjson.dumps(doc)), b"c1", NOW, EventWindow(), wire)
    assert event.event_id == doc["event_id"]


def test_unknown_schema_id_is_a_dead_letter_naming_what_was_expected():
    wire = registry_wire(gone=WriterSchema.unknown(41))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(41, b"\x02"), b"c1", NOW, EventWindow(), wire)
    assert caught.value.error_class == "UnknownSchemaId"
    assert "schema id 41 is not in the Schema Registry" in caught.value.reason
    assert "expected the id of a schema the producer's serializer registered" in caught.value.reason


def test_avro_payload_that_does_not_decode_is_a_dead_letter_naming_the_schema():
    wire = registry_wire(avro=WriterSchema.of(3, "AVRO", AVRO_TEXT))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(3, b"\x00\x7f\xff"), b"c1", NOW, EventWindow(), wire)
    assert caught.value.error_class == "UndecodableAvro"
    assert "does not decode with its writer schema (id 3)" in caught.value.reason


def test_avro_payload_with_bytes_left_over_is_a_dead_letter():
    wire = registry_wire(avro=WriterSchema.of(3, "AVRO", AVRO_TEXT))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(3, avro_bytes(earned()) + b"\x00"), b"c1", NOW, EventWindow(), wire)
    assert "1 bytes left after the datum" in caught.value.reason


def test_avro_record_that_breaks_the_contract_names_the_field():
    doc = earned()
    doc["occurred_at"] = "yesterday"
    wire = registry_wire(avro=WriterSchema.of(3, "AVRO", AVRO_TEXT))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(3, avro_bytes(doc)), b"c1", NOW, EventWindow(), wire)
    assert caught.value.error_class == "SchemaViolation"
    assert "occurred_at: expected an ISO 8601 date-time" in caught.value.reason


def test_protobuf_schema_is_a_dead_letter_naming_the_serializers_to_use():
    wire = registry_wire(proto=WriterSchema.of(5, "PROTOBUF", "syntax = 'proto3';"))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(5, b"\x00"), b"c1", NOW, EventWindow(), wire)
    assert caught.value.error_class == "UnreadableSchema"
    assert "expected Avro or JSON Schema" in caught.value.reason


def test_framed_record_whose_schema_was_not_fetched_is_neither_folded_nor_dead_lettered():
    with pytest.raises(SchemaNotResolved):
        admit(framed(3, b"{}"), b"c1", NOW, EventWindow(), WireFormat(registry=True))


def test_schema_id_outside_the_allowed_set_is_a_dead_letter():
    wire = WireFormat(allowed_schema_ids=frozenset({1, 2}))
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(7, orjson.dumps(earned())), b"c1", NOW, EventWindow(), wire)
    assert caught.value.error_class == "SchemaIdNotAllowed"
    assert "STREAM_REGISTRY__ALLOWED_SCHEMA_IDS: [1, 2]" in caught.value.reason


def test_unframed_json_is_a_dead_letter_when_only_framed_records_are_accepted():
    with pytest.raises(InvalidEvent) as caught:
        admit(orjson.dumps(earned()), b"c1", NOW, EventWindow(), WireFormat(accept_unframed=False))
    assert caught.value.error_class == "Unframed"
    assert "STREAM_REGISTRY__ACCEPT_UNFRAMED is false" in caught.value.reason


def test_framed_avro_without_a_registry_says_avro_needs_the_registry():
    with pytest.raises(InvalidEvent) as caught:
        admit(framed(3, avro_bytes(earned())), b"c1", NOW, EventWindow())
    assert caught.value.error_class == "UnparsableJSON"
    assert "Avro needs the registry" in caught.value.reason


def test_schema_ids_lists_the_distinct_ids_of_framed_values_only():
    values = [framed(3, b"x"), framed(3, b"y"), framed(70000, b""), b'{"a":1}', None, b"\x00\x01"]
    assert schema_ids(values) == {3, 70000}
    assert [schema_id_of(v) for v in values] == [3, 3, 70000, None, None, None]


def test_wire_format_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("STREAM_REGISTRY__URL", "http://127.0.0.1:8081/apis/ccompat/v7")
    monkeypatch.setenv("STREAM_REGISTRY__ALLOWED_SCHEMA_IDS", "4, 5")
    monkeypatch.setenv("STREAM_REGISTRY__ACCEPT_UNFRAMED", "false")
    wire = WireFormat.from_settings(load_settings())
    assert wire == WireFormat(
        accept_unframed=False, allowed_schema_ids=frozenset({4, 5}), registry=True
    )


def test_registry_password_comes_from_its_file(monkeypatch, tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("STREAM_REGISTRY__URL", "http://127.0.0.1:8081")
    monkeypatch.setenv("STREAM_REGISTRY__USERNAME", "loyalty")
    monkeypatch.setenv("STREAM_REGISTRY__PASSWORD_FILE", str(secret))
    registry = load_settings().registry
    assert registry.password is not None
    assert registry.password.get_secret_value() == "s3cret"
