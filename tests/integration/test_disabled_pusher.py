"""A deployment with Ometria disabled for longer than the broker keeps an empty group's offsets."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DeleteGroupsRequest

from stream.runtime.groups import outbox_backlog
from stream.runtime.outbox_progress import UnreadableProgress
from stream.runtime.pusher_versions import PusherStopped
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, committed_to_the_end, names_settings
from tests.support.processes import pusher_outcome
from tests.support.scenarios import produce, story
from tests.support.waiting import all_delivered, outbox_delivered, poll, sandbox_get

GROUP_NOT_EMPTY = 68


async def drop_group(group: str) -> None:
    """Delete a consumer group with its offsets: what the broker does to a group that has been
    empty for offsets.retention.minutes (7 days by default)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:

        async def delete() -> int:
            coordinator = await admin.find_coordinator(group)
            response = await admin._send_request(DeleteGroupsRequest([group]), coordinator)
            return dict(response.results)[group]

        # A member that just left may still be counted for a moment.
        code = await poll(delete, lambda code: code != GROUP_NOT_EMPTY, timeout=30)
        assert code == 0, f"cannot delete group {group}: error {code}"
        assert await admin.list_consumer_group_offsets(group) == {}
    finally:
        await admin.close()


async def received(sandbox: str) -> dict[str, int]:
    """How many times the stand-in received each contact and custom event."""
    contacts = (await sandbox_get(sandbox, "/_sandbox/contacts"))["contacts"]
    events = (await sandbox_get(sandbox, "/_sandbox/events"))["events"]
    return {
        **{f"contact {c['id']}": c["received"] for c in contacts},
        **{f"event {e['id']}": e["received"] for e in events},
    }


async def everything_arrived(sandbox: str, balances: dict[str, int], ids: set[str]) -> None:
    contacts = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"), all_delivered(balances)
    )
    assert all_delivered(balances)(contacts)
    events = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/events"),
        lambda body: {e["id"] for e in body["events"]} >= ids,
    )
    assert {e["id"] for e in events["events"]} >= ids


async def test_offsets_dropped_while_disabled_resend_nothing_and_deliver_what_was_queued(
    names, sandbox, worker, producer
):
    sent_before, balances_before, ids_before = story(15, "before")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, sent_before)
    await everything_arrived(sandbox, balances_before, ids_before)
    await outbox_delivered(names)
    delivered = await received(sandbox)
    assert await worker.stop_async() == 0

    # Disabled: the workers fold and queue, and nothing is a member of the pusher group.
    worker.env["STREAM_OMETRIA__ENABLED"] = "false"
    worker.start()
    await worker.wait_ready()
    queued, balances_queued, ids_queued = story(15, "meanwhile")
    await produce(producer, names.events, queued)
    folded = await poll(
        lambda: committed_to_the_end(names.app_id, names.events),
        lambda got: all(c == end for c, end in got.values()),
    )
    assert all(c == end for c, end in folded.values()), folded
    waiting = await committed_to_the_end(names.pusher_group, names.outbox)
    await drop_group(names.pusher_group)
    backlog = await outbox_backlog(names_settings(names))
    assert backlog.per_partition == {p: end - c for p, (c, end) in waiting.items()}
    assert backlog.total > 0, "records were queued while disabled"
    assert await worker.stop_async() == 0

    worker.env["STREAM_OMETRIA__ENABLED"] = "true"
    worker.start()
    await worker.wait_ready()
    await everything_arrived(sandbox, balances_queued, ids_queued)
    await outbox_delivered(names)

    now = await received(sandbox)
    resent = {key: (n, now[key]) for key, n in delivered.items() if now[key] != n}
    assert resent == {}, f"sent again after re-enabling (before, now): {resent}"
    assert set(now) - set(delivered) == {f"contact {cid}" for cid in balances_queued} | {
        f"event {i}" for i in ids_queued
    }


async def test_a_progress_record_that_is_not_an_offset_stops_the_pusher_saying_how_to_fix_it(
    names, sandbox, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    key = names.outbox.encode()
    for value in (b"12", b"twelve"):
        await producer.send_and_wait(names.outbox_progress, key=key, value=value, partition=2)

    raised, why = await pusher_outcome(names, sandbox)

    assert isinstance(raised, PusherStopped), f"still running, not ready because: {why}"
    assert isinstance(raised.__cause__, UnreadableProgress)
    message = str(raised)
    assert f"{names.outbox_progress} partition 2 offset 1" in message
    assert "tombstone" in message, "says how to fix it"


async def test_a_tombstone_in_the_progress_topic_forgets_the_unreadable_offset(
    names, sandbox, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    key = names.outbox.encode()
    for value in (b"twelve", None):
        await producer.send_and_wait(names.outbox_progress, key=key, value=value, partition=2)

    raised, why = await pusher_outcome(names, sandbox)

    assert raised is None
    assert why is None, "joined and ready"
