"""Events from a producer on librdkafka at its defaults: its partitioner is not Kafka's.

librdkafka's default partitioner (`consistent_random`: CRC32 of the key) puts most customer ids
on another partition than Kafka's murmur2, which Java clients and aiokafka use. A customer's
profile lives where its events are: the fold, the time-based triggers' scan and `/profiles`
must all find it there.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from confluent_kafka import Producer

from stream.runtime.topology import default_partition, ensure_topics
from tests.support.kafka import BOOTSTRAP, Names, envelope, names_settings, read_topic
from tests.support.processes import Worker, second_worker, start_ready
from tests.support.waiting import poll, sandbox_get

CUSTOMERS = [f"crc-{n}" for n in range(24)]
TOKEN = "it-profile-token-crc"


def _story(now: datetime) -> tuple[list[dict], dict[str, int]]:
    """Each customer's events (enrolment with today's birthday, points) and final balance."""
    events, balances = [], {}
    for n, cid in enumerate(CUSTOMERS):
        at = now - timedelta(minutes=30)
        customer = {"id": cid, "email": f"{cid}@example.com"}
        events.append(
            envelope(
                f"{cid}-enrol",
                "customer.enrolled",
                customer,
                {"loyalty_status": "member", "date_of_birth": f"{now:%m-%d}"},
                at,
            )
        )
        balances[cid] = 0
        for k in range(1 + n % 3):
            points = 10 * (k + 1) + n
            balances[cid] += points
            at += timedelta(seconds=1)
            data = {"points": points}
            events.append(envelope(f"{cid}-earn-{k}", "points.earned", {"id": cid}, data, at))
    return events, balances


def _produce_with_librdkafka(topic: str, events: list[dict]) -> dict[str, int]:
    """Send as a confluent-kafka producer left at its defaults; each customer's partition."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    where: dict[str, int] = {}

    def delivered(error, message) -> None:
        assert error is None, error
        where[message.key().decode()] = message.partition()

    for event in events:
        cid = event["customer"]["id"]
        producer.produce(topic, key=cid.encode(), value=orjson.dumps(event), on_delivery=delivered)
    assert producer.flush(30) == 0
    return where


async def test_a_librdkafka_producers_customers_are_folded_scanned_and_served_where_they_are(
    worker_env, tmp_path: Path, names: Names, sandbox
):
    await ensure_topics(names_settings(names, partitions=3))
    now = datetime.now(UTC)
    events, balances = _story(now)
    where = await asyncio.to_thread(_produce_with_librdkafka, names.events, events)
    elsewhere = [cid for cid, p in where.items() if p != default_partition(cid.encode(), 3)]
    assert len(elsewhere) >= len(CUSTOMERS) // 3, "the test needs customers murmur2 misplaces"

    env = {
        **worker_env,
        "STREAM_STORE": "rocksdb://",
        "STREAM_SCHEDULE__INTERVAL": "1s",
        "STREAM_PROFILE_API_TOKEN": TOKEN,
    }
    first = Worker(env, tmp_path / "worker-a.log")
    other = second_worker(env, tmp_path)
    try:
        await start_ready(first, other)

        def delivered(body) -> bool:
            got = {c["id"]: c["properties"].get("rivoPointsBalance") for c in body["contacts"]}
            return got == balances

        contacts = await poll(lambda: sandbox_get(sandbox, "/_sandbox/contacts"), delivered)
        assert delivered(contacts)

        # The birthday falls due today: the scan finds every profile where it is.
        def birthdays(body) -> set[str]:
            return {e["id"].split(":")[0] for e in body["events"]}

        fired = await poll(
            lambda: sandbox_get(sandbox, "/_sandbox/events?event_type=loyalty_birthday"),
            lambda body: birthdays(body) == set(CUSTOMERS),
        )
        assert birthdays(fired) == set(CUSTOMERS)

        # Every profile is written to its own partition of the changelog, never to the one a
        # hash of its id names.
        changelog = await read_topic(f"{names.app_id}-customer_to_profile-changelog", 1)
        written: dict[str, set[int]] = {}
        for record in changelog:
            written.setdefault(orjson.loads(record.key), set()).add(record.partition)
        assert written == {cid: {p} for cid, p in where.items()}

        # Either worker answers for every customer, wherever the profile is.
        url = f"http://127.0.0.1:{first.env['STREAM_WEB_PORT']}"
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=30) as http:

            async def profiles() -> list[httpx.Response]:
                return [
                    await http.get(f"{url}/profiles/{cid}", headers=bearer) for cid in CUSTOMERS
                ]

            answers = await poll(profiles, lambda got: all(a.status_code == 200 for a in got))
            for cid, answer in zip(CUSTOMERS, answers, strict=True):
                assert answer.status_code == 200, (cid, answer.text[:200])
                assert answer.json()["profile"]["points"]["balance"] == balances[cid]
            missing = await http.get(f"{url}/profiles/nobody-here", headers=bearer)
            assert missing.status_code == 404
    finally:
        for worker in (first, other):
            await worker.stop_async()
