"""The Schema Registry client: one look-up per schema id, and waits (never dead letters) while
the registry gives no answer."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest
from tenacity import wait_none

from stream import metrics
from stream.runtime.schema_registry import SchemaRegistry
from stream.settings import RegistrySettings

URL = "http://registry.test:8080/apis/ccompat/v7"
AVRO = orjson.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]})


def registry(handler, **settings) -> SchemaRegistry:
    return SchemaRegistry(
        RegistrySettings(url=URL, **settings),
        transport=httpx.MockTransport(handler),
        wait=wait_none(),
    )


def found(kind: str | None = None) -> httpx.Response:
    body = {"schema": AVRO.decode()} | ({"schemaType": kind} if kind else {})
    return httpx.Response(200, json=body)


async def test_schema_is_fetched_once_per_id_and_kept():
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return found("JSON" if request.url.path.endswith("/9") else None)

    client = registry(handler)
    first = await client.resolve({3, 9})
    again = await client.resolve([3, 9, 3])
    assert asked == ["/apis/ccompat/v7/schemas/ids/3", "/apis/ccompat/v7/schemas/ids/9"]
    assert first[3].kind == "AVRO"
    assert first[3].avro is not None
    assert first[3].problem is None
    assert again[9].kind == "JSON"


async def test_unknown_id_is_answered_but_asked_again_next_time():
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(404, json={"error_code": 40403, "message": "Schema not found"})

    client = registry(handler)
    schemas = await client.resolve({41})
    await client.resolve({41})
    assert schemas[41].problem is not None
    assert "schema id 41 is not in" in schemas[41].problem
    assert len(asked) == 2


@pytest.mark.parametrize(
    ("failure", "reason", "words"),
    [
        (httpx.ConnectError("refused"), "unreachable", "cannot reach the Schema Registry"),
        (httpx.Response(503), "server_error", "answers 503"),
        (httpx.Response(401), "refused", "refuses the credentials (401)"),
        (httpx.Response(404, text="<html>"), "misdirected", "must be the root of Confluent's"),
    ],
)
async def test_registry_without_an_answer_is_waited_for_and_said_why(failure, reason, words):
    before = metrics.REGISTRY_FAILURES.labels(reason)._value.get()
    seen = []
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        seen.append((client.problem, metrics.REGISTRY_WAITING._value.get()))
        if calls <= 2:
            if isinstance(failure, Exception):
                raise failure
            return failure
        return found()

    client = registry(handler, username="loyalty", password="s3cret")
    schemas = await client.resolve({3})
    assert schemas[3].avro is not None
    assert seen[0] == (None, 0)
    assert words in seen[2][0]
    assert seen[2][1] == 1
    assert "s3cret" not in seen[2][0]
    assert client.problem is None
    assert metrics.REGISTRY_WAITING._value.get() == 0
    assert metrics.REGISTRY_FAILURES.labels(reason)._value.get() == before + 2


async def test_registry_is_asked_with_basic_auth():
    headers = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers.get("authorization"))
        return found()

    await registry(handler, username="loyalty", password="s3cret").resolve({1})
    assert headers == ["Basic " + base64.b64encode(b"loyalty:s3cret").decode()]


async def test_unparsable_avro_schema_is_kept_as_a_problem_not_retried():
    client = registry(lambda request: httpx.Response(200, json={"schema": "{not json"}))
    schemas = await client.resolve({6})
    assert schemas[6].kind == "AVRO"
    assert schemas[6].avro is None
    assert "not an Avro schema this service can read" in (schemas[6].problem or "")
