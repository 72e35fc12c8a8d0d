"""Recovery rate of several checkouts side by side, on one changelog written once.

    python -m bench.recovery --profiles 200000 --checkout /tmp/old --checkout . [--store memory://]

Writes `--profiles` real profiles to a fresh table changelog (as figure f does), then, for each
repetition, starts one worker per checkout (its code first on PYTHONPATH) with a fresh data
dir and times start → /readyz: the whole changelog recovered. Checkouts alternate within a
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

from bench import kafka
from bench.figures import Setup, state_populate
from bench.procs import REPO, Worker, worker_env

MIB = 1024 * 1024


async def main(args: argparse.Namespace) -> None:
    run_id = "rec-" + uuid.uuid4().hex[:6]
    prefix = f"bench-{run_id}"
    run_dir = REPO / "bench" / "results" / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = Setup(prefix, run_dir, f"{prefix}.events", 0, args.partitions, 0.0)
    try:
        populated = await state_populate(setup, args.profiles)
        print(f"{populated['profiles']:,} profiles written in {populated['produce_seconds']:.0f} s")
        for rep in range(args.repeat):
            for number, checkout in enumerate(args.checkout):
                data_dir = run_dir / f"data-{rep}-{number}"
                env = worker_env(
                    app_id=populated["app_id"],
                    events_topic=f"{populated['app_id']}.events",
                    data_dir=data_dir,
                    ometria_url=None,
                )
                env["STREAM_STORE"] = args.store
                env["PYTHONPATH"] = os.pathsep.join([checkout, str(REPO)])
                worker = Worker(env, run_dir / f"worker-{rep}-{number}.log")
                try:
                    started = await worker.start()
                    ready = await worker.wait_ready(args.timeout)
                    rss = worker.peak_rss() / MIB
                finally:
                    # SIGTERM: the worker leaves the group, so the next one joins at once
                    # instead of waiting out this one's session.
                    await worker.stop()
                    shutil.rmtree(data_dir, ignore_errors=True)
                seconds = ready - started
                print(
                    f"rep {rep + 1} {checkout} {args.store}: {seconds:.1f} s start → ready, "
                    f"{args.profiles / seconds:,.0f} profiles/s, peak RSS {rss:.0f} MiB",
                    flush=True,
                )
    finally:
        await kafka.delete_topics(prefix)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--checkout", action="append", required=True, help="repeatable")
    parser.add_argument("--store", default="rocksdb://")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    args.checkout = [str(Path(checkout).resolve()) for checkout in args.checkout]
    return args


if __name__ == "__main__":
    started = time.monotonic()
    asyncio.run(main(parse_args()))
    print(f"done in {time.monotonic() - started:.0f} s")
