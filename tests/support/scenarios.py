"""Event stories integration tests produce, and the stand-in's injected faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson

from stream.runtime.topology import ensure_topics
from tests.support.kafka import names_settings

API_KEY = "it-secret-key-7f3a"


def story(customers: int, prefix: str):
    """Each customer enrols and earns twice, now: (events, expected balances, event ids)."""
    now = datetime.now(UTC)
    events, balances, custom_ids = [], {}, set()
    for n in range(customers):
        cid = f"{prefix}{n}"
        events.append(
            {
                "event_id": f"{cid}-enrol",
                "type": "customer.enrolled",
                "occurred_at": now.isoformat(),
                "customer": {"id": cid, "email": f"{cid}@example.com"},
                "data": {},
            }
        )
        for k, points in enumerate((10 + n, 5)):
            event_id = f"{cid}-earn-{k}"
            events.append(
                {
                    "event_id": event_id,
                    "type": "points.earned",
                    "occurred_at": (now + timedelta(seconds=k + 1)).isoformat(),
                    "customer": {"id": cid},
                    "data": {"points": points},
                }
            )
            custom_ids.add(f"{cid}:{event_id}:loyalty_points_earned")
        balances[cid] = 15 + n
    return events, balances, custom_ids


async def produce(producer, topic, events):
    for event in events:
        key = event["customer"]["id"].encode()
        await producer.send(topic, key=key, value=orjson.dumps(event))
    await producer.flush()


async def set_faults(sandbox: str, **faults) -> None:
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as http:
        (await http.put("/_sandbox/faults", json=faults)).raise_for_status()


async def clear_faults(sandbox: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as http:
        (await http.delete("/_sandbox/faults")).raise_for_status()


def event(cid: str, kind: str, n: int, data: dict[str, object]) -> dict[str, object]:
    customer: dict[str, object] = {"id": cid}
    if kind == "customer.enrolled":
        customer["email"] = f"{cid}@example.com"
    return {
        "event_id": f"{cid}-{kind}-{n}",
        "type": kind,
        "occurred_at": (datetime.now(UTC) + timedelta(seconds=n)).isoformat(),
        "customer": customer,
        "data": data,
    }


def without_counts(contacts: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {c["id"]: {k: v for k, v in c.items() if k != "received"} for c in contacts}


async def produce_all(producer, names, events) -> None:
    """Create the topics as the worker would (auto-creation is off), then send every event."""
    await ensure_topics(names_settings(names, partitions=3))
    for event in events:
        key = event["customer"]["id"].encode()
        await producer.send(names.events, key=key, value=orjson.dumps(event))
    await producer.flush()
