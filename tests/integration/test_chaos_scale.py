"""Chaos at scale against the real broker (issue 23): a group that changes while a full batch
folds, a write the broker refuses mid-stream, a slow fold under backpressure and a standby
takeover on RocksDB.

Each test checks what a user sees: the contacts at the Ometria stand-in against the reference
model, the group's committed offsets, the table's changelog, the worker's exit code and its
/readyz figures; none depends on how the fold agent receives its records.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from stream.domain.profile import Profile
from stream.runtime.failstop import EXIT_STOPPED_BEFORE_COMMIT
from tests.support.catalogue import generate
from tests.support.kafka import BOOTSTRAP, committed_to_the_end, known_partitions
from tests.support.processes import Worker, second_worker, start_ready, web_get
from tests.support.scenarios import produce_all, set_faults
from tests.support.waiting import poll, sandbox_get, settle

# About 20,000 events (duplicates included): one full fold batch.
BATCH_CUSTOMERS = 3300


def changelog_of(names) -> str:
    return f"{names.app_id}-customer_to_profile-changelog"


async def read_to_end(topic: str, timeout: float = 30.0) -> dict[int, list]:
    """Every record of `topic` up to its current end, per partition in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await known_partitions(consumer, topic)
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: dict[int, list] = {tp.partition: [] for tp in partitions}
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"{topic} not read to its end within {timeout}s"
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records[tp.partition].extend(r for r in batch if r.offset < ends[tp])
        return records
    finally:
        await consumer.stop()


async def set_topic_config(topic: str, **configs: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        # A whole-config alter: the topic's other dynamic settings go back to the broker's
        # defaults, which nothing in these tests reads after this.
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


async def exit_code(worker: Worker, timeout: float = 60.0) -> int | None:
    """The worker's exit code once it exits by itself, or None at the deadline."""
    assert worker.process is not None
    deadline = time.monotonic() + timeout
    while worker.process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # polling the process, with a deadline
    return worker.process.poll()


async def test_a_worker_joining_and_leaving_while_a_full_batch_folds_keeps_the_reference_contacts_and_changelog_order(  # noqa: E501
    names, sandbox, worker, producer, tmp_path
):
    events, expected = generate(seed=2323, customers=BATCH_CUSTOMERS)
    assert len(events) >= 20_000
    await produce_all(producer, names, events)
    other = second_worker(worker.env, tmp_path)
    worker.start()
    await worker.wait_ready()
    # The first worker takes the whole backlog as one batch once ready; the other joins the
    # group (a rebalance) while that batch folds (about 5 s on 2 cores), then leaves it
    # (another) once it has partitions of its own.
    other.start()
    try:
        await other.wait_ready()
        assert await other.stop_async() == 0
        await settle(sandbox, names, expected, worker)
    finally:
        await other.stop_async()
    changelog = await read_to_end(changelog_of(names))
    assert sum(len(records) for records in changelog.values()) > 0
    backwards = []
    for partition, records in changelog.items():
        latest: dict[bytes, int] = {}
        for record in records:
            if record.value is None:
                continue
            offset = Profile.from_bytes(record.value).input_offset
            if offset < latest.get(record.key, -1):
                backwards.append((partition, record.offset, record.key, offset, latest[record.key]))
            latest[record.key] = offset
    assert backwards == [], f"changelog values older than an earlier one: {backwards[:3]}"
    rewritten = sum(
        len(records) - len({record.key for record in records}) for records in changelog.values()
    )
    assert rewritten > 0, "some keys were written more than once (or nothing was checked)"


@pytest.mark.parametrize("refused", ["outbox", "changelog"])
async def test_a_write_the_broker_refuses_mid_stream_stops_the_worker_with_70_and_commits_nothing_past_it(  # noqa: E501
    names, sandbox, worker, producer, refused
):
    events, expected = generate(seed=77, customers=200)
    half = len(events) // 2
    worker.start()
    await worker.wait_ready()
    await produce_all(producer, names, events[:half])
    folded = await poll(
        lambda: committed_to_the_end(names.app_id, names.events),
        lambda got: all(c == end for c, end in got.values()),
        timeout=45,
    )
    assert all(c == end for c, end in folded.values()), folded
    # Every outbox and changelog message is larger than this: the broker refuses the batch's
    # first write to the topic.
    topic = names.outbox if refused == "outbox" else changelog_of(names)
    await set_topic_config(topic, **{"max.message.bytes": "64"})
    await produce_all(producer, names, events[half:])
    assert await exit_code(worker) == EXIT_STOPPED_BEFORE_COMMIT
    log = worker.text()
    assert "stopping before committing input offsets" in log
    assert "MessageSizeTooLargeError" in log
    after = await committed_to_the_end(names.app_id, names.events)
    # Committed where the first wave ended, which is where the refused batch began.
    assert {p: c for p, (c, _) in after.items()} == {p: c for p, (c, _) in folded.items()}
    assert all(end > c for c, end in after.values()), "the second wave is in every partition"
    # Once the topic takes the writes again, the restarted worker folds the refused batch.
    await set_topic_config(topic, **{"max.message.bytes": str(8 * 1024 * 1024)})
    worker.start()
    await settle(sandbox, names, expected, worker)


async def test_a_standby_takes_over_on_rocksdb_reading_only_the_changelog_tail(
    names, sandbox, worker, producer, tmp_path
):
    events, expected = generate(seed=4242, customers=1000)
    worker.env.update({"STREAM_STORE": "rocksdb://", "STREAM_KAFKA__STANDBY_REPLICAS": "1"})
    other = second_worker(worker.env, tmp_path)
    await start_ready(worker, other)
    try:
        await produce_all(producer, names, events)
        await poll(lambda: sandbox_get(sandbox, "/_sandbox/stats"), lambda s: s["contacts"] > 300)
        # Everything both hold so far: each worker's standby reads the other's partitions.
        written = await read_to_end(changelog_of(names))
        mark = len(other.text())
        worker.stop(signal.SIGKILL)
        await settle(sandbox, names, expected, other)
        taken_over = await poll(
            lambda: asyncio.to_thread(lambda: other.text()[mark:]),
            lambda text: "Worker ready" in text,
            timeout=30,
        )
        assert "Worker ready" in taken_over, "the survivor did not complete a recovery"
        recovery = (await web_get(other, "/readyz")).json()["recovery"]
    finally:
        await other.stop_async()
    assert recovery["in_progress"] is False
    whole = min(len(records) for records in written.values())
    # The survivor read at most the records its standby had not yet applied: a small tail,
    # where a takeover without a standby reads every record of each partition it takes.
    assert recovery.get("applied", 0) < whole / 4, (recovery, whole)


def slow_mapping(path) -> str:
    """A mapping with many Ometria lists: each changed customer's contact checks 1,400 CEL
    conditions, about 22 ms a customer on an idle 2-core machine (8.7 s for the 400 below,
    measured), more on a busy one: batches that fold for about the session timeout (10 s
    here) and the stall checks' patience (10 s), or longer."""
    lines = ['extends = "rivo"']
    for n in range(1400):
        condition = f"after.points.balance >= {n * 10} && size(after.email) > {n % 5}"
        lines += ["[[list]]", f'id = "{2000 + n}"', f"condition = '{condition}'"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


async def test_a_slow_fold_behind_a_throttled_stand_in_is_no_stall_and_folds_every_event(
    names, sandbox, worker, producer, tmp_path
):
    # A backlog of about 2,400 events (one batch) that folds for longer than the session and
    # the shortest stall timeout there is, while the stand-in throttles the pusher in the worker.
    events, _ = generate(seed=5151, customers=400)
    await set_faults(sandbox, rate_limit=1)
    worker.env["STREAM_KAFKA__STALL_TIMEOUT"] = "10s"
    worker.env["STREAM_MAPPING__FILE"] = slow_mapping(tmp_path / "slow.mapping.toml")
    await produce_all(producer, names, events)
    worker.start()
    await worker.wait_ready()
    folded = await poll(
        lambda: committed_to_the_end(names.app_id, names.events),
        lambda got: all(c == end for c, end in got.values()) or worker.process.poll() is not None,
        timeout=60,
    )
    assert worker.process.poll() is None, f"the worker exited:\n{worker.text()[-3000:]}"
    assert all(c == end for c, end in folded.values()), folded
    # The pusher in the worker is throttled while it delivers what was folded (a fast fold may
    # end before its second request): the worker still stops for nothing.
    stats = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/stats"),
        lambda got: got["by_status"].get("429", 0) > 0,
        timeout=30,
    )
    assert stats["by_status"].get("429", 0) > 0, "the stand-in throttled the pusher"
    assert worker.process.poll() is None, f"the worker exited:\n{worker.text()[-3000:]}"
    log = worker.text()
    assert "stopping before committing" not in log
    # And it stayed in its group while it folded: no heartbeat went missing for a session.
    assert "Heartbeat session expired" not in log
