"""`--json` of `status` and the dry runs against the real broker: stdout is one JSON object."""

from __future__ import annotations

import asyncio
import sys

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.ops.backfill import changelog_topic
from stream.runtime.topology import ensure_topics
from tests.support.kafka import BOOTSTRAP, Names, names_settings
from tests.support.paths import REPO
from tests.support.processes import command_env

pytestmark = pytest.mark.integration


async def run_json(names: Names, *args: str) -> tuple[int, dict[str, object], str]:
    """`python -m stream <args>`: (exit code, stdout parsed as JSON, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        *args,
        env=command_env(names),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    (line,) = out.decode().splitlines()  # one object, nothing else on stdout
    return process.returncode, orjson.loads(line), err.decode()


async def test_status_json_is_the_deployments_state(names):
    code, document, err = await run_json(names, "status", "--json")
    assert code == 0, err
    assert document["command"] == "status"
    assert document["app_id"] == names.app_id
    assert document["paused"] is False
    assert [g["group"] for g in document["groups"]] == [names.app_id, f"{names.app_id}-pusher"]
    assert document["erasures_pending_in_ometria"] == 0


async def test_dry_runs_answer_json_and_change_nothing(names):
    # The deployment's topics, the table's changelog included, as its workers would have made
    # them (a replay of a topic that does not exist is refused).
    settings = names_settings(names)
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        changelog = NewTopic(
            changelog_topic(settings), 3, 1, topic_configs={"cleanup.policy": "compact"}
        )
        await admin.create_topics([changelog])
    finally:
        await admin.close()
    code, replay, err = await run_json(names, "replay", "--from", "earliest", "--dry-run", "--json")
    assert code == 0, err
    assert (replay["command"], replay["group"], replay["records"]) == ("replay", names.app_id, 0)
    code, backfill, err = await run_json(names, "backfill", "--dry-run", "--json")
    assert code == 0, err
    assert (backfill["command"], backfill["profiles"], backfill["contacts"]) == ("backfill", 0, 0)
    code, redrive, err = await run_json(names, "redrive", "events", "--dry-run", "--json")
    assert code == 0, err
    assert (redrive["dead_letter_topic"], redrive["scanned"]) == (names.dead_letter, 0)
    code, forget, err = await run_json(
        names, "forget", "--customer", "c-json-1", "--dry-run", "--json"
    )
    assert code == 0, err
    assert (forget["customers"], forget["topic"]) == (1, names.events)
    assert forget["records"] == len(forget["partitions"])
    # A dry run records nothing: the status still shows no backfill and no replay.
    code, status, err = await run_json(names, "status", "--json")
    assert (status["last_backfill"], status["last_replay"]) == (None, None)
