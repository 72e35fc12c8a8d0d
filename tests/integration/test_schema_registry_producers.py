"""Producers on confluent-kafka's own JSONSerializer and AvroSerializer, beside plain JSON ones.

The serializers register their schemas in a real Schema Registry: the local Apicurio Registry
(`deploy/local/registry.sh`, Confluent's API at /apis/ccompat/v7), which `make test` starts, or
the one SCHEMA_REGISTRY_URL names. Subjects are the test's own (its topic is), so tests and runs
never share one. The worker reaches that registry through a small proxy in the test that first
answers 503, as a registry that is down: the worker then waits, reports not ready and says why
in /metrics, and once the proxy forwards it folds everything, dead-lettering nothing.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from aiohttp import ClientSession, web
from confluent_kafka import Producer
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, Names, envelope, names_settings, read_topic
from tests.support.processes import Worker, web_get
from tests.support.waiting import outbox_delivered, poll, sandbox_get

REGISTRY = os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
SCHEMAS = Path(__file__).parents[2] / "schemas"
KINDS = ("plain", "json", "avro")


class RegistryProxy:
    """Forwards the worker's look-ups to the real registry; `down` answers 503 instead."""

    def __init__(self, registry: str) -> None:
        # The worker's URL keeps the registry's path: only scheme, host and port change.
        self.origin = str(httpx.URL(registry).copy_with(path="/", query=None)).rstrip("/")
        self.down = True
        self.refused = 0
        self.forwarded: list[tuple[str, int]] = []
        self._session: ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", self.forward)
        app.on_cleanup.append(self._close)
        return app

    async def forward(self, request: web.Request) -> web.Response:
        if self.down:
            self.refused += 1
            return web.json_response({"error_code": 50003, "message": "down"}, status=503)
        if self._session is None:
            self._session = ClientSession()
        accept = request.headers.get("Accept", "application/json")
        async with self._session.get(
            f"{self.origin}{request.path_qs}", headers={"Accept": accept}
        ) as answer:
            body = await answer.read()
            self.forwarded.append((request.path, answer.status))
            return web.Response(body=body, status=answer.status, content_type=answer.content_type)

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


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


def _produce(topic: str, stories: dict[str, list[dict]]) -> set[int]:
    """Send each story as its kind of producer does, with confluent-kafka's serializers
    registering their schemas in the real registry; the schema ids they wrote."""
    with SchemaRegistryClient({"url": REGISTRY}) as client:
        json_serializer = JSONSerializer(
            (SCHEMAS / "loyalty-event.schema.json").read_text(), client
        )
        # One Avro record per event type on the topic: the subject names topic and record.
        avro_serializers = {
            event_type: AvroSerializer(
                client,
                (SCHEMAS / f"{event_type}.avsc").read_text(),
                conf={"subject.name.strategy": topic_record_subject_name_strategy},
            )
            for event_type in {e["type"] for e in stories["avro"]}
        }
        context = SerializationContext(topic, MessageField.VALUE)
        producer = Producer({"bootstrap.servers": BOOTSTRAP})
        schema_ids = set()
        for kind, events in stories.items():
            for event in events:
                if kind == "plain":
                    value = orjson.dumps(event)
                elif kind == "json":
                    value = json_serializer(event, context)
                else:
                    value = avro_serializers[event["type"]](event, context)
                if kind != "plain":
                    schema_ids.add(int.from_bytes(value[1:5], "big"))
                producer.produce(topic, key=event["customer"]["id"].encode(), value=value)
        assert producer.flush(30) == 0
    return schema_ids


async def _registry_subjects() -> list[str]:
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            response = await client.get(f"{REGISTRY}/subjects")
        except httpx.ConnectError as exc:
            raise AssertionError(
                f"no Schema Registry answers at {REGISTRY}: `make registry-up` starts the local "
                "one (or set SCHEMA_REGISTRY_URL)"
            ) from exc
    response.raise_for_status()
    return response.json()


def _as_plain(contact: dict, kind: str) -> dict:
    """A contact with the customer's own identifiers put back to the plain producer's."""
    text = orjson.dumps(contact).decode().replace(f"{kind}-customer", "plain-customer")
    return orjson.loads(text)


async def test_serialized_events_fold_exactly_like_plain_json_ones_once_the_registry_answers(
    worker_env, tmp_path: Path, names: Names, sandbox
):
    before = await _registry_subjects()
    proxy = RegistryProxy(REGISTRY)
    runner = web.AppRunner(proxy.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url_path = httpx.URL(REGISTRY).path.rstrip("/")
    url = f"http://127.0.0.1:{port}{url_path}"
    worker = Worker({**worker_env, "STREAM_REGISTRY__URL": url}, tmp_path / "worker.log")
    try:
        await ensure_topics(names_settings(names, partitions=3))
        stories = _stories(datetime.now(UTC))
        schema_ids = await asyncio.to_thread(_produce, names.events, stories)
        registered = set(await _registry_subjects()) - set(before)
        assert registered == {f"{names.events}-value"} | {
            f"{names.events}-loyalty_stream.events.{record}"
            for record in ("CustomerEnrolled", "PointsEarned", "TierChanged")
        }
        worker.start()

        # Down: the fold waits, the worker says why.
        await poll(lambda: asyncio.sleep(0, proxy.refused), lambda n: n >= 2, 60)
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
        assert proxy.forwarded == []

        proxy.down = False
        body = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
            lambda got: len(got["contacts"]) == len(KINDS),
        )
        contacts = {c["id"].split("-")[0]: c for c in body["contacts"]}
        assert set(contacts) == set(KINDS), body
        assert contacts["plain"]["properties"]
        for kind in ("json", "avro"):
            assert _as_plain(contacts[kind], kind) == contacts["plain"]
        # The custom events may come in a later request than the contacts: read them once the
        # pusher has delivered the whole outbox.
        await outbox_delivered(names)
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
        # The writer schemas came from the real registry: one JSON Schema, three Avro records.
        assert len(schema_ids) == 4
        assert set(proxy.forwarded) == {(f"{url_path}/schemas/ids/{i}", 200) for i in schema_ids}
        assert (await web_get(worker, "/readyz")).json()["schema_registry"] == "ok"
        assert "loyalty_schema_registry_waiting 0.0" in (await web_get(worker, "/metrics")).text
        assert await read_topic(names.dead_letter, 1, timeout=3) == []
    finally:
        if worker.process is not None:
            await worker.stop_async()
        await runner.cleanup()
