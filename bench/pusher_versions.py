"""Peak RSS of a pusher loading 1,000,000 delivered versions: in a dict (STREAM_STORE=memory://)
beside the on-disk store (rocksdb://, first load and a restart that reads only the tail).

    .venv/bin/python -m bench.pusher_versions [customers]

Writes a fresh one-partition versions topic on the broker at KAFKA_BOOTSTRAP_SERVERS, then runs
each load in its own process (Pusher._load_versions for partition 0, the assignment's read) and
reports the child's peak RSS (ru_maxrss) and seconds. The topic is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MIB = 2**20


def produce(topic: str, app_id: str, customers: int) -> None:
    from stream.domain.records import Version, encode_version
    from stream.runtime.contact_versions import version_record

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[
        topic
    ].result()
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 50})
    for n in range(customers):
        key, headers = version_record(app_id, f"customer-{n:08d}")
        while True:
            try:
                producer.produce(
                    topic,
                    key=key,
                    value=encode_version(Version(0, n)),
                    partition=0,
                    headers=headers,
                )
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush()


def load(topic: str, app_id: str, store: str, data_dir: str) -> None:
    """In the child: one assignment's read of partition 0, as the pusher does it."""
    from pydantic import SecretStr

    from stream.ometria.client import OmetriaClient
    from stream.runtime import pusher as pusher_module
    from stream.settings import load_settings

    pusher_module.VERSIONS_READ_TIMEOUT = 3600.0  # measured here, not bounded
    settings = load_settings(
        kafka={"bootstrap_servers": BOOTSTRAP},
        app_id=app_id,
        store=store,
        data_dir=data_dir,
        topics={"outbox_versions": topic, "events": f"{topic}.no-events"},
    )

    async def main() -> dict[str, float]:
        pusher = pusher_module.Pusher(settings, OmetriaClient("http://127.0.0.1:9", SecretStr("x")))
        pusher._tombstones_kept = 86400.0
        await pusher._reader.start()
        started = time.monotonic()
        try:
            await pusher._load_versions({0})
        finally:
            await pusher._reader.stop()
        seconds = time.monotonic() - started
        probe = pusher._delivered_version(0, "customer-00000007")
        assert probe is not None, "customer 7 was loaded"
        assert probe.offset == 7, probe
        return {"seconds": seconds, "versions_read": pusher.versions_read}

    print(json.dumps(asyncio.run(main())))


def measured(*args: str) -> dict[str, float]:
    child = subprocess.Popen(  # noqa: S603 (this module, with its own arguments)
        [sys.executable, "-m", "bench.pusher_versions", "--load", *args],
        stdout=subprocess.PIPE,
        # The clients it never starts warn on exit: noise here.
        stderr=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"the load {args} failed ({status})")
    return {**json.loads(out), "peak_rss_mib": usage.ru_maxrss * 1024 / MIB}


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        load(*sys.argv[2:6])
        return
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    app_id = f"bench-versions-{uuid.uuid4().hex[:8]}"
    topic = f"{app_id}.outbox-versions"
    started = time.monotonic()
    produce(topic, app_id, customers)
    print(f"wrote {customers:,} versions to {topic} in {time.monotonic() - started:.1f}s")
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            rows = {
                "dict (memory://)": measured(topic, app_id, "memory://", data_dir),
                "store, first load (rocksdb://)": measured(topic, app_id, "rocksdb://", data_dir),
                "store, restart (rocksdb://)": measured(topic, app_id, "rocksdb://", data_dir),
            }
            size = sum(f.stat().st_size for f in Path(data_dir).rglob("*") if f.is_file())
        for name, row in rows.items():
            print(
                f"{name:32} peak RSS {row['peak_rss_mib']:7.1f} MiB  "
                f"{row['seconds']:6.1f}s  read {int(row['versions_read']):,} records"
            )
        print(f"store on disk: {size / MIB:.1f} MiB")
    finally:
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        admin.delete_topics([topic])[topic].result()


if __name__ == "__main__":
    main()
