"""Two deployments (two app ids) on one broker, sharing the control and versions topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from stream.ops.sandbox import SandboxConfig, running_sandbox
from stream.runtime.control import ControlWatch, PauseState
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, Names, names_settings
from tests.support.processes import Worker, free_port, metric, run_cli, start_ready
from tests.support.scenarios import produce, story
from tests.support.waiting import (
    all_delivered,
    folded_to_the_end,
    outbox_delivered,
    poll,
    replay_when_stopped,
    sandbox_get,
)


@pytest.fixture
def other() -> Names:
    """The second deployment's own names (its control and versions topics are the first's)."""
    return Names(uuid.uuid4().hex[:10])


@pytest.fixture
async def other_sandbox() -> AsyncIterator[str]:
    """The second deployment's Ometria account."""
    async with running_sandbox(
        SandboxConfig(port=0, api_key="it-secret-key-7f3a", rate_limit=50)
    ) as url:
        yield url


@pytest.fixture
def other_env(worker_env: dict[str, str], other: Names, other_sandbox: str, tmp_path: Path):
    """The second deployment: its own app id, input, outbox and account, and the first's
    control and versions topics (the defaults two deployments would share)."""
    env = dict(worker_env)
    env.update(
        {
            "STREAM_APP_ID": other.app_id,
            "STREAM_TOPICS__EVENTS": other.events,
            "STREAM_TOPICS__DEAD_LETTER": other.dead_letter,
            "STREAM_TOPICS__OUTBOX": other.outbox,
            "STREAM_TOPICS__OUTBOX_DEAD_LETTER": other.outbox_dead_letter,
            "STREAM_OMETRIA__BASE_URL": other_sandbox,
            "STREAM_WEB_PORT": str(free_port()),
            "STREAM_DATA_DIR": str(tmp_path / "data-other"),
        }
    )
    return env


@pytest.fixture
async def other_worker(other_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Worker]:
    process = Worker(other_env, tmp_path / "worker-other.log")
    yield process
    if process.process is not None:
        await process.stop_async()


def delivered(url: str, balances: dict[str, int]):
    return poll(lambda: sandbox_get(url, "/_sandbox/contacts"), all_delivered(balances))


async def test_pausing_one_deployment_leaves_the_other_delivering_even_the_same_customer_ids(
    names, sandbox, worker, other, other_sandbox, other_worker, producer
):
    # The first deployment has read further into its input: its versions of the shared ids are
    # larger than any the second one will reach.
    filler, filler_balances, _ = story(40, "fill")
    shared, shared_balances, _ = story(5, "shared")
    worker.start()
    await worker.wait_ready()
    await produce(producer, names.events, filler + shared)
    await delivered(sandbox, filler_balances | shared_balances)
    await outbox_delivered(names)  # its versions of the shared ids are stored
    other_worker.start()
    await other_worker.wait_ready()

    code, out = await run_cli(worker.env, "pause")
    assert code == 0, out
    assert await poll(lambda: metric(worker, "ometria_paused"), lambda v: v == 1) == 1
    during, during_balances, _ = story(3, "during")
    await produce(producer, other.events, during)
    body = await delivered(other_sandbox, during_balances)
    assert all_delivered(during_balances)(body), "the other deployment kept delivering"
    assert await metric(other_worker, "ometria_paused") == 0
    code, out = await run_cli(other_worker.env, "status")
    assert "status: pushing (not paused)" in out, out

    code, out = await run_cli(worker.env, "resume")
    assert code == 0, out
    await produce(producer, other.events, shared)
    body = await delivered(other_sandbox, shared_balances)
    assert all_delivered(shared_balances)(body), "overlapping ids are not stale elsewhere"
    await outbox_delivered(other)
    assert await metric(other_worker, "ometria_stale_contacts_total") == 0


async def test_a_backfill_of_one_deployment_starts_no_cooldown_for_the_other(worker_env, other_env):
    code, out = await run_cli(worker_env, "backfill")
    assert code == 0, out
    code, out = await run_cli(other_env, "backfill")
    assert code == 0, out
    code, out = await run_cli(worker_env, "backfill")
    assert code == 1, out
    assert "refused" in out, "each deployment keeps its own cooldown"
    code, out = await run_cli(other_env, "status")
    assert "status: last backfill 20" in out, out


async def test_replaying_one_deployment_neither_holds_back_nor_wipes_the_other(
    names, sandbox, worker, other, other_sandbox, other_worker, producer
):
    # The first deployment's input partitions end well past the second's: a replay mark taken
    # from them would cover the second deployment's next events.
    filler, filler_balances, _ = story(40, "fill")
    first, first_balances, _ = story(3, "first")
    await start_ready(worker, other_worker)
    await produce(producer, names.events, filler)
    await produce(producer, other.events, first)
    await delivered(sandbox, filler_balances)
    await delivered(other_sandbox, first_balances)
    await folded_to_the_end(names)

    await worker.stop_async()
    out = await replay_when_stopped(worker.env, "--from", "earliest", "--reset-state")
    assert "table state discarded" in out
    await other_worker.stop_async()
    await start_ready(worker, other_worker)
    assert "replay reset the table" in worker.text()
    assert "replay reset the table" not in other_worker.text()

    later, later_balances, campaigns = story(3, "later")
    await produce(producer, other.events, later)
    await delivered(other_sandbox, later_balances)
    body = await poll(
        lambda: sandbox_get(other_sandbox, "/_sandbox/events"),
        lambda got: {e["id"] for e in got["events"]} >= campaigns,
    )
    assert {e["id"] for e in body["events"]} >= campaigns, "its campaigns still fire"


async def write_unscoped(topic: str, key: bytes, value: bytes, partitions: range) -> None:
    """A record as the versions before app-scoped keys wrote it: the bare key, no headers."""
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for partition in partitions:
            await producer.send_and_wait(topic, key=key, value=value, partition=partition)
    finally:
        await producer.stop()


async def watching(settings):
    watch = ControlWatch(settings)
    await watch.start()
    return watch


async def test_a_pause_from_before_the_upgrade_holds_until_each_deployment_resumes(
    names, other, worker_env, other_env
):
    mine = names_settings(names, partitions=3)
    theirs = names_settings(other, partitions=3, control=names.control)
    third_names = Names(uuid.uuid4().hex[:10])
    third = names_settings(third_names, control=names.control)
    await ensure_topics(mine)
    paused = PauseState(paused=True, since=None).to_bytes()
    await write_unscoped(names.control, b"pause", paused, range(1))
    watches = [await watching(mine), await watching(theirs)]
    try:
        assert await paused_states(watches) == [True, True], "paused as before the upgrade"
        code, out = await run_cli(worker_env, "status")
        assert "status: paused since an unknown time" in out, out
        assert "pause read from records without an app id" in out, out

        code, out = await run_cli(worker_env, "resume")
        assert code == 0, out
        states = await poll(lambda: paused_states(watches), lambda got: got == [False, True], 15)
        assert states == [False, True], "the other deployment still obeys the old record"
        code, out = await run_cli(other_env, "resume")
        assert code == 0, out
        states = await poll(lambda: paused_states(watches), lambda got: got == [False, False], 15)
        assert states == [False, False]
    finally:
        for watch in watches:
            await watch.stop()

    # A process of the older version pauses again: only a deployment without a record of its
    # own obeys it.
    await write_unscoped(names.control, b"pause", paused, range(1))
    watches = [await watching(mine), await watching(theirs), await watching(third)]
    try:
        assert await paused_states(watches) == [False, False, True]
    finally:
        for watch in watches:
            await watch.stop()

    # Pausing a deployment the old record already holds makes the pause its own: the older
    # version's resume no longer lifts it.
    third_env = other_env | {
        "STREAM_APP_ID": third_names.app_id,
        "STREAM_TOPICS__EVENTS": third_names.events,
        "STREAM_TOPICS__OUTBOX": third_names.outbox,
    }
    code, out = await run_cli(third_env, "pause")
    assert code == 0, out
    assert "already paused" in out, out
    await write_unscoped(names.control, b"pause", PauseState(paused=False).to_bytes(), range(1))
    watch = await watching(third)
    try:
        assert watch.paused
    finally:
        await watch.stop()


async def paused_states(watches) -> list[bool]:
    return [watch.paused for watch in watches]


async def test_versions_from_before_the_upgrade_still_guard_contacts_unless_past_the_input(
    names, sandbox, worker, producer
):
    await ensure_topics(names_settings(names, partitions=3))
    # Enrolments only (one offset each), up0's first: its contact is version 0.
    events, _, _ = story(20, "up")
    await produce(producer, names.events, [e for e in events if e["type"] == "customer.enrolled"])
    # The version stored for up0 is newer than its contact and below the input's ends (20
    # records on 3 partitions: one ends at 7 or more); the one stored for up1 is past every
    # offset of this input, so another deployment's.
    await write_unscoped(names.outbox_versions, b"up0", b"5", range(3))
    await write_unscoped(names.outbox_versions, b"up1", b"1000000", range(3))
    worker.start()
    await worker.wait_ready()
    expected = {f"up{n}" for n in range(1, 20)}
    body = await poll(
        lambda: sandbox_get(sandbox, "/_sandbox/contacts"),
        lambda got: {c["id"] for c in got["contacts"]} >= expected,
    )
    await outbox_delivered(names)
    body = await sandbox_get(sandbox, "/_sandbox/contacts")
    assert {c["id"] for c in body["contacts"]} == expected, "up0 is held as stale, up1 is not"
    assert await metric(worker, "ometria_stale_contacts_total") == 1
