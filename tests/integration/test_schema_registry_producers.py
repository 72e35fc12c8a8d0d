"""Producers on confluent-kafka's own JSONSerializer and AvroSerializer, beside plain JSON ones.

No real registry runs on this machine: Apicurio 3.x needs Java 21 (Debian here has 17), and
Maven Central lacks dependencies of 2.6.13.Final (apicurio-registry-schema-util-provider) and
the parent POM of 3.0.9; Karapace is not on PyPI; Confluent's own comes from Confluent's Maven
repository, which this machine cannot reach. So the serializers and the worker talk, over
HTTP, to a stand-in speaking the part of Confluent's REST API they use (register a schema
under a subject, fetch a schema by id). The stand-in first answers 503, as a registry that is
down: the worker then waits, reports not ready and says why in /metrics, and folds everything
once it answers, dead-lettering nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiohttp import web
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from stream.runtime.topology import ensure_topics
from tests.integration.conftest import (
    BOOTSTRAP,
    Names,
    Worker,
    envelope,
    names_settings,
    poll,
    read_topic,
    sandbox_get,
    web_get,
)

SCHEMAS = Path(__file__).parents[2] / "schemas"
KINDS = ("plain", "json", "avro")


class RegistryStandIn:
    """Schemas by id, registered by subject; `down` makes every look-up by id answer 503."""

    def __init__(self) -> None:
        self.schemas: list[dict] = []
        self.down = True
        self.lookups_refused = 0
        self.requests: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/subjects/{subject}/versions", self.register)
        app.router.add_get("/schemas/ids/{id}", self.by_id)
        return app

    async def register(self, request: web.Request) -> web.Response:
        self.requests.append(f"POST {request.path}")
        body = await request.json()
        schema = {"schema": body["schema"]}
        if body.get("schemaType", "AVRO") != "AVRO":
            schema["schemaType"] = body["schemaType"]
        if schema not in self.schemas:
            self.schemas.append(schema)
        return web.json_response({"id": self.schemas.index(schema) + 1})

    async def by_id(self, request: web.Request) -> web.Response:
        self.requests.append(f"GET {request.path}")
        if self.down:
            self.lookups_refused += 1
            return web.json_response({"error_code": 50003, "message": "down"}, status=503)
        index = int(request.match_info["id"]) - 1
        if not 0 <= index < len(self.schemas):
            return web.json_response({"error_code": 40403, "message": "not found"}, status=404)
        return web.json_response(self.schemas[index])


def _stories(now: datetime) -> dict[str, list[dict]]:
    """The same story for one customer per kind of producer."""
    stories = {}
    for kind in KINDS:
        cid = f"{kind}-customer"
        customer = {"id": cid, "email": f"{cid}@example.com", "first_name": "Sam"}
        at = now - timedelta(minutes=10)
        stories[kind] = [
            envelope(f"{cid}-1", "customer.enrolled", customer, {"loyalty_status": "member"}, at),
            envelope(
                f"{cid}-2", "points.earned", {"id": cid}, {"points": 120}, at + timedelta(seconds=1)
            ),
            envelope(
                f"{cid}-3",
                "tier.changed",
                {"id": cid},
                {"tier": "Silver", "previous_tier": "Bronze", "direction": "up"},
                at + timedelta(seconds=2),
            ),
        ]
    return stories


def _produce(topic: str, registry_url: str, stories: dict[str, list[dict]]) -> None:
    """Send each story as its kind of producer does, with confluent-kafka's serializers."""
    with SchemaRegistryClient({"url": registry_url}) as client:
        _produce_with(topic, client, stories)


def _produce_with(topic: str, client: SchemaRegistryClient, stories: dict[str, list[dict]]) -> None:
    json_serializer = JSONSerializer((SCHEMAS / "loyalty-event.schema.json").read_text(), client)
    avro_serializers = {
        event_type: AvroSerializer(
            client,
            (SCHEMAS / f"{event_type}.avsc").read_text(),
            conf={"subject.name.strategy": record_subject_name_strategy},
        )
        for event_type in {e["type"] for e in stories["avro"]}
    }
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    for kind, events in stories.items():
        for event in events:
            if kind == "plain":
                value = orjson.dumps(event)
            elif kind == "json":
                value = json_serializer(event, context)
            else:
                value = avro_serializers[event["type"]](event, context)
            producer.produce(topic, key=event["customer"]["id"].encode(), value=value)
    assert producer.flush(30) == 0


def _as_plain(contact: dict, kind: str) -> dict:
    """A contact with the customer's own identifiers put back to the plain producer's."""
    text = orjson.dumps(contact).decode().replace(f"{kind}-customer", "plain-customer")
    return orjson.loads(text)


async def test_serialized_events_fold_exactly_like_plain_json_ones_once_the_registry_answers(
    worker_env, tmp_path: Path, names: Names, sandbox
):
    registry = RegistryStandIn()
    runner = web.AppRunner(registry.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    worker = Worker({**worker_env, "STREAM_REGISTRY__URL": url}, tmp_path / "worker.log")
    try:
        await ensure_topics(names_settings(names, partitions=3))
        stories = _stories(datetime.now(UTC))
        await asyncio.to_thread(_produce, names.events, url, stories)
        assert [r.split("/")[1] for r in registry.requests] == ["subjects"] * 4
        worker.start()

        # Down: the fold waits, the worker says why.
        await poll(lambda: asyncio.sleep(0, registry.lookups_refused), lambda n: n >= 2, 60)
        readiness = await poll(
            lambda: web_get(worker, "/readyz"),
            lambda r: "Schema Registry" in r.json().get("schema_registry", ""),
            60,
        )
        assert readiness.status_code == 503
        assert "answers 503" in readiness.json()["schema_registry"]
        exposition = (await web_get(worker, "/metrics")).text
        assert "loyalty_schema_registry_waiting 1.0" in exposition
        assert 'loyalty_schema_registry_failures_total{reason="server_error"}' in exposition

        registry.down = False
        body = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
            lambda got: len(got["contacts"]) == len(KINDS),
        )
        contacts = {c["id"].split("-")[0]: c for c in body["contacts"]}
        assert set(contacts) == set(KINDS), body
        assert contacts["plain"]["properties"]
        for kind in ("json", "avro"):
            assert _as_plain(contacts[kind], kind) == contacts["plain"]
        events = (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
        fired = {
            kind: sorted(
                (
                    _as_plain(e, kind)
                    for e in events
                    if f"{kind}-customer" in orjson.dumps(e).decode()
                ),
                key=orjson.dumps,
            )
            for kind in KINDS
        }
        assert fired["plain"]
        assert fired["json"] == fired["avro"] == fired["plain"]
        assert (await web_get(worker, "/readyz")).json()["schema_registry"] == "ok"
        assert "loyalty_schema_registry_waiting 0.0" in (await web_get(worker, "/metrics")).text
        assert await read_topic(names.dead_letter, 1, timeout=3) == []
    finally:
        if worker.process is not None:
            await worker.stop_async()
        await runner.cleanup()
