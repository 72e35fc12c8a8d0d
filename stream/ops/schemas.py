"""JSON Schemas of the event contract, generated from the models (`python -m stream schemas`)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import orjson

from stream.domain.events import EVENT_ADAPTER, LoyaltyEvent

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_ROOT = "https://github.com/loyalty-stream/loyalty-stream/schemas/"


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


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[Path]:
    """Write every schema into `directory`; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generate().items():
        path = directory / name
        path.write_bytes(render(schema))
        written.append(path)
    return written
