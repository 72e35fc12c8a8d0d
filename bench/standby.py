"""How fast a standby copy of a table partition catches up, for several checkouts side by side.

    python -m bench.standby --profiles 100000 --checkout /tmp/old --checkout . [--repeat 2]

Writes `--profiles` real profiles to a fresh 2-partition table changelog (as figure f does),
then, for each checkout (its code first on PYTHONPATH): worker A starts alone and recovers
both partitions; worker B joins with an empty data dir and gets one partition active and the
other as a standby (STREAM_KAFKA__STANDBY_REPLICAS=1), which it reads from the changelog's
start. Printed: seconds from B's start until its /readyz says ready, and until it says ready
with `standby_remaining` 0 (B's log has the bulk readers' own rates). Checkouts alternate within a
repetition, as the machine's speed drifts over minutes. Deletes its topics at the end.

    python -m bench.standby --follow --profiles 200000 --checkout .

How far a standby lags while its partition's changelog is written: one partition, worker A
active and worker B its standby; `--profiles` profiles are written to the changelog as fast as
the broker takes them (as the active side would, faster than a fold writes), then A is
SIGKILLed. Printed: the records B's takeover still had to read (its standby's lag, from B's
log), and the seconds from the kill until B is ready again (a session timeout, 10 s, first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import httpx

from bench import kafka
from bench.figures import Setup, profile_templates, profile_values, state_populate
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


async def follow(args: argparse.Namespace) -> None:
    run_id = "sbf-" + uuid.uuid4().hex[:6]
    prefix = f"bench-{run_id}"
    app_id = f"{prefix}-f"
    run_dir = REPO / "bench" / "results" / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    changelog = f"{app_id}-customer_to_profile-changelog"
    try:
        await kafka.create_topic(f"{app_id}.events", 1)
        await kafka.create_topic(changelog, 1, {"cleanup.policy": "compact"})
        values = list(profile_values(profile_templates(200), args.profiles, json_keys=True))
        for number, checkout in enumerate(args.checkout):
            workers = []
            for name in ("a", "b"):
                env = worker_env(
                    app_id=app_id,
                    events_topic=f"{app_id}.events",
                    data_dir=run_dir / f"data-{number}-{name}",
                    ometria_url=None,
                )
                env["STREAM_KAFKA__STANDBY_REPLICAS"] = "1"
                env["PYTHONPATH"] = os.pathsep.join([checkout, str(REPO)])
                workers.append(Worker(env, run_dir / f"worker-{number}-{name}.log"))
            active, standby = workers
            try:
                await active.start()
                await active.wait_ready(args.timeout)
                await standby.start()
                await standby.wait_ready(args.timeout)
                started = time.monotonic()
                await kafka.produce(changelog, values, 1)
                written = time.monotonic()
                mark = len(standby.log.read_text())
                await active.stop(kill=True)
                killed = time.monotonic()
                text = ""
                while "Recovery]: Worker ready" not in text:
                    if time.monotonic() > killed + args.timeout:
                        raise TimeoutError("the standby did not take over")
                    standby.check_alive()
                    await asyncio.sleep(0.2)  # reading the log, with a deadline
                    text = standby.log.read_text()[mark:]
                took = time.monotonic() - killed
            finally:
                for worker in (standby, active):
                    await worker.stop()
                for worker in workers:
                    shutil.rmtree(worker.env["STREAM_DATA_DIR"], ignore_errors=True)
            read = re.findall(r"bulk recovery applied (\d+) changelog records", text)
            lag = sum(int(n) for n in read)
            print(
                f"{checkout}: {args.profiles:,} profiles written in {written - started:.1f} s; "
                f"at the kill the standby lacked {lag:,}; ready again {took:.1f} s after it",
                flush=True,
            )
            # The next checkout starts from an empty changelog of its own.
            if number + 1 < len(args.checkout):
                app_id = f"{prefix}-f{number + 1}"
                changelog = f"{app_id}-customer_to_profile-changelog"
                await kafka.create_topic(f"{app_id}.events", 1)
                await kafka.create_topic(changelog, 1, {"cleanup.policy": "compact"})
    finally:
        await kafka.delete_topics(prefix)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.standby", description=__doc__)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--checkout", action="append", required=True, help="repeatable")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--follow", action="store_true", help="the lag while following")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    args.checkout = [str(Path(checkout).resolve()) for checkout in args.checkout]
    return args


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(follow(arguments) if arguments.follow else main(arguments))
