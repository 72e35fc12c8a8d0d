"""The committed JSON Schemas are the producers' contract: they must match the models."""

from __future__ import annotations

import io

import fastavro
import orjson
import pytest
from jsonschema import Draft202012Validator

from stream.domain.events import EVENT_TYPES, parse_document, parse_event
from stream.domain.wire import decode_avro
from stream.ops.schemas import generate, generate_avro, render
from tests.support import paths

SCHEMAS = paths.SCHEMAS
EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))


def test_committed_schemas_match_the_models():
    generated = generate()
    on_disk = {p.name for p in SCHEMAS.glob("*.schema.json")}
    assert on_disk == set(generated), "run `python -m stream schemas` and commit the result"
    for name, schema in generated.items():
        assert (SCHEMAS / name).read_bytes() == render(schema), (
            f"schemas/{name} drifted from the models: run `python -m stream schemas`"
        )


def test_every_event_type_has_a_schema_and_an_example():
    assert {f"{t}.schema.json" for t in EVENT_TYPES} <= set(generate())
    assert {p.stem for p in EXAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_its_schema_and_the_envelope(path):
    example = orjson.loads(path.read_bytes())
    for name in (f"{path.stem}.schema.json", "loyalty-event.schema.json"):
        schema = orjson.loads((SCHEMAS / name).read_bytes())
        Draft202012Validator.check_schema(schema)
        Draft202012Validator(schema).validate(example)
    assert parse_event(path.read_bytes()).type == path.stem


def test_schema_rejects_what_the_parser_rejects():
    schema = orjson.loads((SCHEMAS / "loyalty-event.schema.json").read_bytes())
    example = orjson.loads((SCHEMAS / "examples" / "points.earned.json").read_bytes())
    validator = Draft202012Validator(schema)
    for broken in (
        {**example, "unknown": 1},
        {**example, "data": {**example["data"], "points": -1}},
        {**example, "data": {**example["data"], "credits": 2.5}},
        {**example, "customer": {}},
    ):
        assert not validator.is_valid(broken)


AVRO_SCHEMAS = sorted(SCHEMAS.glob("*.avsc"))


def test_committed_avro_schemas_match_the_models():
    generated = generate_avro()
    assert {p.name for p in AVRO_SCHEMAS} == set(generated) == {f"{t}.avsc" for t in EVENT_TYPES}, (
        "run `python -m stream schemas` and commit the result"
    )
    for name, schema in generated.items():
        assert (SCHEMAS / name).read_bytes() == render(schema), (
            f"schemas/{name} drifted from the models: run `python -m stream schemas`"
        )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_written_with_its_avro_schema_reads_as_the_json_event(path):
    schema = fastavro.parse_schema(orjson.loads((SCHEMAS / f"{path.stem}.avsc").read_bytes()))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, orjson.loads(path.read_bytes()))
    assert parse_document(decode_avro(buffer.getvalue(), schema)) == parse_event(path.read_bytes())
