"""Input written by a transactional producer: the commit marker that ends each transaction
takes an offset no record is ever delivered at, so an idle partition's end lies past its last
record."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from stream.runtime.topology import default_partition
from stream.runtime.watchdogs import STALL_CHECK_EVERY
from tests.support.kafka import BOOTSTRAP, committed_to_the_end, envelope
from tests.support.waiting import poll, sandbox_get

STALL_TIMEOUT = 10.0
PARTITIONS = 3  # the worker fixture's STREAM_TOPICS__PARTITIONS


def points(cid: str, n: int, amount: int) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=1)
    customer = {"id": cid, "email": f"{cid}@example.com"}
    return orjson.dumps(envelope(f"{cid}-{n}", "points.earned", customer, {"points": amount}, at))


def balances(want: dict[str, int]):
    def done(body) -> bool:
        got = {c["id"]: c["properties"].get("rivoPointsBalance") for c in body["contacts"]}
        return all(got.get(cid) == balance for cid, balance in want.items())

    return done


async def test_idle_partitions_ending_in_a_transaction_marker_do_not_stop_the_worker(
    names, sandbox, worker
):
    # One customer's partition ends in a marker when the worker starts (it resumes from a
    # committed offset that is the marker's), the other's while it runs.
    before, during = (
        "tx-a",
        next(
            cid
            for cid in (f"tx-b{n}" for n in range(100))
            if default_partition(cid.encode(), PARTITIONS) != default_partition(b"tx-a", PARTITIONS)
        ),
    )
    worker.env["STREAM_KAFKA__STALL_TIMEOUT"] = f"{STALL_TIMEOUT:.0f}s"
    worker.start()
    await worker.wait_ready()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"{names.run}-tx")
    await producer.start()

    async def send(cid: str, n: int, amount: int) -> None:
        async with producer.transaction():
            await producer.send_and_wait(
                names.events, key=cid.encode(), value=points(cid, n, amount)
            )

    async def contacts():
        return await sandbox_get(sandbox, "/_sandbox/contacts")

    try:
        await send(before, 0, 10)
        await poll(contacts, balances({before: 10}))
        await worker.stop_async()
        worker.start()
        await worker.wait_ready()
        await send(during, 0, 7)
        await poll(contacts, balances({before: 10, during: 7}))
        ends = await committed_to_the_end(names.app_id, names.events)
        assert sorted(end for _, end in ends.values()) == [0, 2, 2], "a record and a marker each"

        # Long enough for the watch to have judged both partitions stalled (it starts its clock
        # at one check and stops the worker at the first check past the timeout).
        idle_until = time.monotonic() + STALL_TIMEOUT + 2 * STALL_CHECK_EVERY + 5

        async def exit_code() -> int | None:
            assert worker.process is not None
            return worker.process.poll()

        code = await poll(
            exit_code,
            lambda got: got is not None,
            timeout=max(0.0, idle_until - time.monotonic()),
            interval=1,
        )
        assert code is None, f"the worker exited with {code}:\n{worker.text()[-3000:]}"
        assert "delivered no record" not in worker.text()
        judged = worker.text().count("(transaction markers or compacted): nothing waits")
        assert judged >= 2, "both partitions were judged and found waiting for nothing"

        await send(before, 1, 5)
        await send(during, 1, 5)
        body = await poll(contacts, balances({before: 15, during: 12}))
        assert balances({before: 15, during: 12})(body), "the worker still folds what comes next"
    finally:
        await producer.stop()
