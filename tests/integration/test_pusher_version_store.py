"""The pusher's on-disk delivered versions (STREAM_STORE=rocksdb://): a restart reads only the
versions topic's tail, and a pusher taking a partition back catches up on what others wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from stream import metrics
from stream.domain.records import Version, encode_version, with_version
from stream.runtime.contact_versions import version_record
from stream.runtime.topology import ensure_topics
from tests.support.kafka import names_settings
from tests.support.processes import running_pusher
from tests.support.records import contact
from tests.support.waiting import outbox_delivered, sandbox_get


def on_disk(names, data_dir: Path):
    return names_settings(names, partitions=3).model_copy(
        update={"store": "rocksdb://", "data_dir": data_dir}
    )


async def write_versions(producer, names, versions: dict[str, int], partition: int) -> None:
    """What a pusher of the test's deployment writes after delivering these contacts."""
    for contact_id, offset in versions.items():
        key, headers = version_record(names.app_id, contact_id)
        await producer.send_and_wait(
            names.outbox_versions,
            key=key,
            value=encode_version(Version(0, offset)),
            partition=partition,
            headers=headers,
        )


async def joined(pusher) -> None:
    await asyncio.wait_for(pusher.joined.wait(), timeout=60)


async def test_a_restarted_pusher_reads_only_the_versions_written_since_it_stopped(
    names, sandbox, producer, tmp_path
):
    settings = on_disk(names, tmp_path / "pod-a")
    await ensure_topics(settings)
    await write_versions(producer, names, {f"c-{n}": 100 + n for n in range(30)}, partition=1)

    async with running_pusher(settings, sandbox) as (pusher, _):
        await joined(pusher)
        assert pusher.versions.read == 30
        assert pusher.versions.delivered(1, "c-7") == Version(0, 107)

    await write_versions(producer, names, {"c-7": 500, "c-new": 9}, partition=1)

    async with running_pusher(settings, sandbox) as (pusher, _):
        await joined(pusher)
        assert pusher.versions.read == 2, "only the tail since the store's checkpoint"
        assert pusher.versions.delivered(1, "c-7") == Version(0, 500)
        assert pusher.versions.delivered(1, "c-new") == Version(0, 9)
        assert pusher.versions.delivered(1, "c-8") == Version(0, 108)


async def test_a_pusher_taking_a_partition_back_drops_a_contact_another_delivered_newer(
    names, sandbox, producer, tmp_path
):
    pod_a, pod_b = on_disk(names, tmp_path / "pod-a"), on_disk(names, tmp_path / "pod-b")
    await ensure_topics(pod_a)
    await write_versions(producer, names, {"t-1": 10}, partition=2)
    async with running_pusher(pod_a, sandbox) as (pusher, _):
        await joined(pusher)
        assert pusher.versions.delivered(2, "t-1") == Version(0, 10)

    # Meanwhile pod B owns the partition, delivers t-1 at version 20 and writes that version.
    async with running_pusher(pod_b, sandbox) as (pusher, _):
        await joined(pusher)
        assert pusher.versions.delivered(2, "t-1") == Version(0, 10)
    await write_versions(producer, names, {"t-1": 20}, partition=2)

    stale_before = metrics.REGISTRY.get_sample_value("ometria_stale_contacts_total") or 0.0
    older = with_version(contact("t-1", rivoPointsBalance=1), offset=15)
    await producer.send_and_wait(names.outbox, key=b"t-1", value=orjson.dumps([older]), partition=2)
    async with running_pusher(pod_a, sandbox) as (pusher, _):
        await joined(pusher)
        assert pusher.versions.delivered(2, "t-1") == Version(0, 20), "caught up, not stale"
        await outbox_delivered(names)

    assert (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"] == []
    assert metrics.REGISTRY.get_sample_value("ometria_stale_contacts_total") == stale_before + 1
