"""How fast a standby copy of a table partition catches up, for several checkouts side by side.

    python -m bench.standby --profiles 100000 --checkout /tmp/old --checkout . [--repeat 2]

Writes `--profiles` real profiles to a fresh 2-partition table changelog (as figure f does),
then, for each checkout (its code first on PYTHONPATH): worker A starts alone and recovers
both partitions; worker B joins with an empty data dir and gets one partition active and the
other as a standby (STREAM_KAFKA__STANDBY_REPLICAS=1), which it reads from the changelog's
start. Printed: seconds from B's start until its /readyz says ready, and until it says ready
with `standby_remaining` 0 (B's log has the bulk readers' own rates). Checkouts alternate within a
repetition, as the machine's speed drifts over minutes. Deletes its topics at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path

import httpx

from bench import kafka
from bench.figures import Setup, state_populate
from bench.procs import REPO, Worker, worker_env

PARTITIONS = 2


async def _caught_up(worker: Worker, within: float) -> float:
    """When the worker's /readyz first said ready with no standby record left to apply."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        worker.check_alive()
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"http://127.0.0.1:{worker.port}/readyz")
        body = response.json()
        if "standby_remaining" not in body.get("recovery", {}):
            raise RuntimeError("this checkout's /readyz has no standby_remaining")
        if response.status_code == 200 and body["recovery"]["standby_remaining"] == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)  # sampling a figure, with a deadline
    raise TimeoutError(f"the standby did not catch up within {within:.0f} s")


async def main(args: argparse.Namespace) -> None:
    run_id = "sby-" + uuid.uuid4().hex[:6]
    prefix = f"bench-{run_id}"
    run_dir = REPO / "bench" / "results" / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = Setup(prefix, run_dir, f"{prefix}.events", 0, PARTITIONS, 0.0)
    try:
        populated = await state_populate(setup, args.profiles)
        print(f"{populated['profiles']:,} profiles written in {populated['produce_seconds']:.0f} s")
        for rep in range(args.repeat):
            for number, checkout in enumerate(args.checkout):
                workers = []
                for name in ("a", "b"):
                    env = worker_env(
                        app_id=populated["app_id"],
                        events_topic=f"{populated['app_id']}.events",
                        data_dir=run_dir / f"data-{rep}-{number}-{name}",
                        ometria_url=None,
                    )
                    env["STREAM_KAFKA__STANDBY_REPLICAS"] = "1"
                    env["PYTHONPATH"] = os.pathsep.join([checkout, str(REPO)])
                    workers.append(Worker(env, run_dir / f"worker-{rep}-{number}-{name}.log"))
                first, second = workers
                try:
                    await first.start()
                    await first.wait_ready(args.timeout)
                    started = await second.start()
                    ready = await second.wait_ready(args.timeout)
                    caught_up = await _caught_up(second, args.timeout)
                finally:
                    for worker in (second, first):
                        await worker.stop()
                    for worker in workers:
                        shutil.rmtree(worker.env["STREAM_DATA_DIR"], ignore_errors=True)
                print(
                    f"rep {rep + 1} {checkout}: worker B ready {ready - started:.1f} s after "
                    f"its start, its standby caught up {caught_up - started:.1f} s after "
                    f"(the standby partition: about {args.profiles // PARTITIONS:,} profiles)",
                    flush=True,
                )
    finally:
        await kafka.delete_topics(prefix)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.standby", description=__doc__)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--checkout", action="append", required=True, help="repeatable")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    args.checkout = [str(Path(checkout).resolve()) for checkout in args.checkout]
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
