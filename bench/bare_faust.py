"""Figure b: a minimal Faust app (raw values, memory store) whose one agent counts events.

Run as `python -m bench.bare_faust --app-id ID --topic T --expected N --out FILE`; when the
agent has seen N events it writes {"events", "first", "last"} (wall-clock seconds) to FILE,
and the parent stops the process.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import faust
import orjson

from bench.kafka import BOOTSTRAP


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_faust")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    app = faust.App(
        args.app_id,
        broker=f"kafka://{BOOTSTRAP}",
        store="memory://",
        datadir=str(args.out.parent / f"{args.app_id}-data"),
        autodiscover=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes)
    seen = {"count": 0, "first": 0.0}

    @app.agent(topic)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            seen["count"] += 1
            if seen["count"] == 1:
                seen["first"] = time.time()
            if seen["count"] == args.expected:
                result = {"events": args.expected, "first": seen["first"], "last": time.time()}
                partial = args.out.with_suffix(".tmp")
                partial.write_bytes(orjson.dumps(result))
                os.replace(partial, args.out)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
