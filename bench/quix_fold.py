"""Figure q: the peer. A Quix Streams Application folds the events topic per customer.

Run as `python -m bench.quix_fold --group G --topic T --expected N --out FILE --state-dir D`
with an interpreter that has quixstreams (`make bench-scale` builds one: see bench/README.md).
A stateful step keeps a small profile per customer in Quix's default state store (RocksDB,
with its changelog topic): it reads the profile, counts the event, sums its points, notes the
event's time and writes the profile back. When N events are folded it writes
{"events", "first", "last"} (wall-clock seconds) to FILE and the parent stops the process.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, State


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quix_fold")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    seen = {"count": 0, "first": 0.0}

    def fold(event: dict[str, Any], state: State) -> None:
        profile = state.get("profile") or {"events": 0, "points": 0, "last_event_at": ""}
        points = event.get("data", {}).get("points", 0)
        profile = {
            "events": profile["events"] + 1,
            "points": profile["points"] + (points if isinstance(points, int) else 0),
            "last_event_at": max(profile["last_event_at"], event["occurred_at"]),
        }
        state.set("profile", profile)
        seen["count"] += 1
        if seen["count"] == 1:
            seen["first"] = time.time()
        if seen["count"] == args.expected:
            result = {"events": args.expected, "first": seen["first"], "last": time.time()}
            partial = args.out.with_suffix(".tmp")
            partial.write_bytes(orjson.dumps(result))
            os.replace(partial, args.out)

    app.dataframe(topic).update(fold, stateful=True)
    app.run()


if __name__ == "__main__":
    main()
