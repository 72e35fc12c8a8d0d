"""A worker recovers its table from the changelog alone: the latest value of every key, and
keys whose latest record is a tombstone stay deleted, for both stores and after a restart on
local RocksDB state."""

from __future__ import annotations

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.domain.profile import Profile
from tests.support.kafka import BOOTSTRAP
from tests.support.processes import Worker, metric, web_get

TOKEN = "it-recovery-token"
PARTITIONS = 3
# Enough records per partition that the bulk reader needs several fetches.
BULK = 3000


def _key(customer: str) -> bytes:
    # Faust's json key codec, as the worker writes its changelog keys.
    return b'"' + customer.encode() + b'"'


def _profile(customer: str, marker: str) -> bytes:
    return Profile(customer_id=customer, first_name=marker).to_bytes()


async def _write_changelog(topic: str, records: list[tuple[int, str, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for partition, customer, value in records:
            await producer.send(topic, value, key=_key(customer), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def _create(topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()


async def _first_name(worker: Worker, customer: str) -> str | None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"http://127.0.0.1:{worker.env['STREAM_WEB_PORT']}/profiles/{customer}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    name: str | None = response.json()["profile"]["first_name"]
    return name


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
async def test_recovered_table_holds_each_keys_latest_value_and_tombstoned_keys_stay_deleted(
    names, worker_env, tmp_path, store
):
    changelog = f"{names.app_id}-customer_to_profile-changelog"
    await _create(changelog)
    records: list[tuple[int, str, bytes | None]] = [
        (0, "kept", _profile("kept", "v1")),
        (0, "gone", _profile("gone", "v1")),
        (1, "back", _profile("back", "v1")),
    ]
    records += [(n % PARTITIONS, f"bulk-{n}", _profile(f"bulk-{n}", "b1")) for n in range(BULK)]
    records += [
        (0, "kept", _profile("kept", "v2")),
        (0, "gone", None),
        (1, "back", None),
        (1, "back", _profile("back", "v3")),
        (2, "bulk-2", None),
    ]
    await _write_changelog(changelog, records)
    env = {**worker_env, "STREAM_STORE": store, "STREAM_PROFILE_API_TOKEN": TOKEN}
    env["STREAM_TOPICS__PARTITIONS"] = str(PARTITIONS)
    worker = Worker(env, tmp_path / "worker.log")
    worker.start()
    try:
        await worker.wait_ready()
        assert await _first_name(worker, "kept") == "v2"
        assert await _first_name(worker, "gone") is None
        assert await _first_name(worker, "back") == "v3"
        assert await _first_name(worker, "bulk-2") is None
        assert await _first_name(worker, "bulk-2999") == "b1"
        readiness = (await web_get(worker, "/readyz")).json()
        # The bulk reader applied every record written (none through Faust's own path).
        assert readiness["recovery"] == {
            "in_progress": False,
            "remaining": 0,
            "applied": len(records),
            "per_second": readiness["recovery"]["per_second"],
            "standby_remaining": 0,
        }
        assert readiness["recovery"]["per_second"] > 0
        if store == "rocksdb://":
            # What the recovery wrote was flushed to disk: its memtables hold nothing.
            memtables = await metric(worker, "loyalty_rocksdb_memory_bytes", part="memtables")
            assert memtables < 1024 * 1024, memtables
        assert await worker.stop_async() == 0
        if store != "rocksdb://":
            return
        # A restart on local state reads only what came after the offsets the store persisted.
        later: list[tuple[int, str, bytes | None]] = [
            (0, "kept", None),
            (0, "gone", _profile("gone", "v4")),
            (2, "late", _profile("late", "v1")),
        ]
        await _write_changelog(changelog, later)
        worker.start()
        await worker.wait_ready()
        assert await _first_name(worker, "kept") is None
        assert await _first_name(worker, "gone") == "v4"
        assert await _first_name(worker, "late") == "v1"
        assert await _first_name(worker, "back") == "v3"
        assert await _first_name(worker, "bulk-2") is None
        assert await _first_name(worker, "bulk-2998") == "b1"
        assert (await web_get(worker, "/readyz")).json()["recovery"]["applied"] == len(later)
    finally:
        worker.stop()
