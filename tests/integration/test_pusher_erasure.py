"""The pusher and an erased customer: nothing of them is sent, their contact version is deleted."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from stream import metrics
from stream.domain.erasure import erased_id, erasure_record
from stream.domain.records import with_version
from stream.runtime.contact_versions import version_record
from stream.runtime.topology import ensure_topics
from tests.support.kafka import names_settings, read_topic
from tests.support.processes import running_pusher
from tests.support.records import contact
from tests.support.waiting import outbox_delivered, poll, sandbox_get

PARTITION = 1


def versioned(cid: str, version: int, balance: int) -> dict[str, Any]:
    return with_version(contact(cid, balance=balance), version)


def custom(cid: str, n: int) -> dict[str, Any]:
    return {
        "@type": "custom_event",
        "id": f"{cid}:e{n}:points",
        "timestamp": "2026-05-01T10:00:00+00:00",
        "event_type": "loyalty_points_earned",
        "identity_account_id": cid,
        "identity_email": f"{cid}@example.com",
        "properties": {},
    }


async def write_outbox(producer, names, *records: dict[str, Any]) -> None:
    """Each record as its own outbox message, in order, in the test's outbox partition."""
    for record in records:
        await producer.send_and_wait(
            names.outbox, key=b"k", value=orjson.dumps([record]), partition=PARTITION
        )


async def version_values(names, key: bytes, expected: int) -> list[bytes | None]:
    """The values stored for `key` on the versions topic, oldest first."""
    records = await read_topic(names.outbox_versions, expected=expected)
    return [r.value for r in records if r.key == key and r.partition == PARTITION]


def erasures_applied() -> float:
    return metrics.REGISTRY.get_sample_value("loyalty_erasures_applied_total") or 0.0


# Not a substring of anything else the pusher logs: member ids end in "pusher-" and a hex uuid,
# so an id such as "er-c" was found in them one run in sixteen.
ERASED = "er-zed"


async def test_pusher_erasure_sends_nothing_of_the_erased_customer_and_deletes_their_version(
    names, sandbox, producer, caplog
):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    await write_outbox(
        producer,
        names,
        versioned(ERASED, 4, 40),
        custom(ERASED, 1),
        erasure_record(ERASED, ERASED),
        versioned("er-d", 6, 60),
    )
    before = erasures_applied()

    with caplog.at_level(logging.INFO, logger="stream.runtime.push_round"):
        async with running_pusher(settings, sandbox):
            await outbox_delivered(names)

    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    assert [c["id"] for c in contacts] == ["er-d"]
    assert (await sandbox_get(sandbox, "/_sandbox/events"))["events"] == []
    key, _ = version_record(names.app_id, ERASED)
    assert (await version_values(names, key, expected=2))[-1:] == [None]
    assert erasures_applied() - before == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert erased_id(settings.erasure_hash_key, ERASED) in logged
    assert ERASED not in logged, "the customer id never reaches the logs"


async def test_pusher_erasure_after_a_delivered_contact_tombstones_its_version_and_a_re_enrolment_is_sent(  # noqa: E501
    names, sandbox, producer
):
    settings = names_settings(names, partitions=3)
    await ensure_topics(settings)
    key, _ = version_record(names.app_id, "er-c")

    async def balances() -> dict[str, int]:
        body = await sandbox_get(sandbox, "/_sandbox/contacts")
        return {c["id"]: c["properties"]["balance"] for c in body["contacts"]}

    async def sent(balance: int) -> None:
        assert await poll(balances, lambda got: got == {"er-c": balance}) == {"er-c": balance}
        await outbox_delivered(names)

    async with running_pusher(settings, sandbox):
        await write_outbox(producer, names, versioned("er-c", 5, 50))
        await sent(50)
        assert await version_values(names, key, expected=1) == [b"5"]

        await write_outbox(producer, names, erasure_record("er-c", "er-c"))
        await outbox_delivered(names)
        assert await version_values(names, key, expected=2) == [b"5", None]

        # Re-enrolled: a new profile's contact, at a version below the one deleted.
        await write_outbox(producer, names, versioned("er-c", 1, 10))
        await sent(10)
        await write_outbox(producer, names, erasure_record("er-c", "er-c"))
        await outbox_delivered(names)

    assert await version_values(names, key, expected=4) == [b"5", None, b"1", None]
    # A pusher that reads the versions topic afresh forgets the erased version too.
    async with running_pusher(settings, sandbox):
        await write_outbox(producer, names, versioned("er-c", 0, 7))
        await sent(7)
