"""JSON Schemas and Avro schemas of the event contract, generated from the models
(`python -m stream schemas`)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import orjson

from stream.domain.events import EVENT_ADAPTER, LoyaltyEvent

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_ROOT = "https://github.com/loyalty-stream/loyalty-stream/schemas/"
AVRO_NAMESPACE = "loyalty_stream.events"


def _event_models() -> list[Any]:
    union = typing.get_args(LoyaltyEvent)[0]
    return list(typing.get_args(union))


def generate() -> dict[str, dict[str, Any]]:
    """File name → schema: one per event type, and `loyalty-event` for any of them."""
    schemas: dict[str, dict[str, Any]] = {}
    envelope = EVENT_ADAPTER.json_schema()
    envelope["title"] = "LoyaltyEvent"
    envelope["description"] = (
        "One loyalty event per Kafka record, keyed by customer.id; `type` selects the data shape."
    )
    schemas["loyalty-event.schema.json"] = envelope
    for model in _event_models():
        event_type = model.model_fields["type"].annotation.__args__[0]
        schema = model.model_json_schema()
        schema["description"] = f"A `{event_type}` loyalty event."
        schemas[f"{event_type}.schema.json"] = schema
    for name, schema in schemas.items():
        schema["$schema"] = SCHEMA_DIALECT
        schema["$id"] = ID_ROOT + name
    return schemas


def generate_avro() -> dict[str, dict[str, Any]]:
    """File name → Avro schema, one per event type, translated from the type's JSON Schema.

    One record per type, not one union of them all: a union of records that share field
    names lets a writer pick the wrong branch (fastavro takes the first that fits). Producers
    register each under its record name (RecordNameStrategy). Constraints Avro cannot state
    (patterns, bounds, formats) stay in the JSON Schemas and the parser; a field's doc names
    the format where one applies.
    """
    schemas: dict[str, dict[str, Any]] = {}
    for model in _event_models():
        event_type = model.model_fields["type"].annotation.__args__[0]
        json_schema = model.model_json_schema()
        record = _avro_record(json_schema, json_schema.get("$defs", {}), set())
        record["namespace"] = AVRO_NAMESPACE
        record["doc"] = f"A `{event_type}` loyalty event."
        schemas[f"{event_type}.avsc"] = record
    return schemas


def _avro_record(node: dict[str, Any], defs: dict[str, Any], named: set[str]) -> Any:
    name = node["title"]
    if name in named:
        return name
    named.add(name)
    required = set(node.get("required", ()))
    fields = []
    for field_name, prop in node.get("properties", {}).items():
        field: dict[str, Any] = {"name": field_name, "type": _avro_type(prop, defs, named)}
        if "const" in prop:
            field["default"] = prop["const"]
        elif field_name not in required:
            if prop.get("default") is not None:
                field["default"] = prop["default"]
            else:  # absent in JSON, null in Avro: the reader drops nulls (stream.domain.wire)
                branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
                field["type"] = ["null", *(b for b in branches if b != "null")]
                field["default"] = None
        if doc := _avro_doc(prop):
            field["doc"] = doc
        fields.append(field)
    record: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
    if "description" in node:
        record["doc"] = node["description"]
    return record


def _avro_type(node: dict[str, Any], defs: dict[str, Any], named: set[str]) -> Any:
    if "$ref" in node:
        return _avro_record(defs[node["$ref"].rsplit("/", 1)[1]], defs, named)
    if "anyOf" in node:
        branches: list[Any] = []
        for option in node["anyOf"]:
            found = _avro_type(option, defs, named)
            for branch in found if isinstance(found, list) else [found]:
                if branch not in branches:
                    branches.append(branch)
        # Avro wants null first in an optional field's union (its default is null).
        return sorted(branches, key=lambda branch: branch != "null")
    kind = node.get("type")
    if kind == "array":
        return {"type": "array", "items": _avro_type(node["items"], defs, named)}
    if kind == "object":
        return _avro_record(node, defs, named)
    # Literals (enums, consts) stay strings: Avro enum symbols cannot hold "." or spaces.
    # A JSON number may be an integer: both stay exact.
    simple = {"string": "string", "integer": "long", "boolean": "boolean", "null": "null"}
    return ["long", "double"] if kind == "number" else simple[str(kind)]


def _avro_doc(prop: dict[str, Any]) -> str | None:
    options = [prop, *prop.get("anyOf", ())]
    if any(option.get("format") == "date-time" for option in options):
        return "ISO 8601 date-time with a UTC offset, such as 2026-11-21T10:00:00+00:00"
    for option in options:
        if "pattern" in option:
            return f"a string matching {option['pattern']}"
        if "enum" in option:
            return "one of " + ", ".join(option["enum"])
    return None


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[Path]:
    """Write every schema into `directory`; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in {**generate(), **generate_avro()}.items():
        path = directory / name
        path.write_bytes(render(schema))
        written.append(path)
    return written
