"""Integration fixtures: the real Kafka broker, the Ometria stand-in and a worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.ops.sandbox import SandboxConfig, running_sandbox
from stream.settings import Settings, load_settings

BOOTSTRAP = os.environ.get(
    "STREAM_KAFKA__BOOTSTRAP_SERVERS", os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
)
REPO = Path(__file__).resolve().parents[2]
READY = "Worker]: Ready"
# What each command logs once it does its job.
READY_LINES = {"worker": READY, "push": "pushing outbox partitions"}


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def envelope(event_id, event_type, customer, data, at) -> dict:
    """A loyalty event document as producers send it."""
    return {
        "event_id": event_id,
        "type": event_type,
        "occurred_at": at.isoformat(),
        "source": "rivo",
        "customer": customer,
        "data": data,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Names:
    """Unique topic names and app id, so tests never share state on the one broker."""

    run: str

    @property
    def app_id(self) -> str:
        return f"it-{self.run}"

    @property
    def events(self) -> str:
        return f"it-{self.run}.events"

    @property
    def dead_letter(self) -> str:
        return f"it-{self.run}.events.dlq"

    @property
    def outbox(self) -> str:
        return f"it-{self.run}.outbox"

    @property
    def outbox_dead_letter(self) -> str:
        return f"it-{self.run}.outbox.dlq"

    @property
    def outbox_versions(self) -> str:
        return f"it-{self.run}.outbox.versions"

    @property
    def outbox_progress(self) -> str:
        return f"it-{self.run}.outbox.progress"

    @property
    def control(self) -> str:
        return f"it-{self.run}.control"

    @property
    def redriven(self) -> str:
        return f"it-{self.run}.redriven"

    @property
    def erasures(self) -> str:
        return f"it-{self.run}.erasures"

    @property
    def pusher_group(self) -> str:
        return f"{self.app_id}-pusher"


@pytest.fixture
def names() -> Names:
    return Names(uuid.uuid4().hex[:10])


@pytest.fixture
async def sandbox() -> AsyncIterator[str]:
    # A generous rate so tests measure behaviour, not the throttle (throttling has its own tests).
    async with running_sandbox(
        SandboxConfig(port=0, api_key="it-secret-key-7f3a", rate_limit=50)
    ) as url:
        yield url


SANDBOX_ARGS = ("--api-key", "it-secret-key-7f3a", "--rate-limit", "50")


@pytest.fixture
async def sandbox_process(tmp_path: Path) -> AsyncIterator[str]:
    """The stand-in as its own process (`python -m stream sandbox`), for tests that time its
    arrivals: in this process it would share the event loop with the test's own polling."""
    port = free_port()
    log = (tmp_path / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "stream", "sandbox", "--port", str(port), *SANDBOX_ARGS],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the stand-in did not start"
            assert process.poll() is None, "the stand-in exited"
            await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


class Worker:
    """`python -m stream worker` as a child process with its own environment and log."""

    def __init__(self, env: dict[str, str], log: Path, command: str = "worker") -> None:
        self.env = env
        self.log = log
        self.command = command
        self.ready_line = READY_LINES[command]
        self.process: subprocess.Popen[bytes] | None = None
        self._ready_before = 0
        self.cwd: Path = log.parent

    def start(self) -> None:
        # A restarted worker appends to the same log: readiness is one more "Ready" line.
        self._ready_before = self.text().count(self.ready_line) if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream", self.command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_ready(self, timeout: float = 90.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.text()[-3000:]
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{tail}")
            if self.text().count(self.ready_line) > self._ready_before:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.text()[-3000:]}")

    async def stop_async(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Stop without blocking the event loop (the in-process stand-in must keep answering)."""
        return await asyncio.to_thread(self.stop, sig, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def command_env(names: Names) -> dict[str, str]:
    """The environment of a `python -m stream` command on a test's own topics and group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    env.update(
        {
            "STREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "STREAM_APP_ID": names.app_id,
            "STREAM_TOPICS__EVENTS": names.events,
            "STREAM_TOPICS__DEAD_LETTER": names.dead_letter,
            "STREAM_TOPICS__OUTBOX": names.outbox,
            "STREAM_TOPICS__OUTBOX_DEAD_LETTER": names.outbox_dead_letter,
            "STREAM_TOPICS__OUTBOX_VERSIONS": names.outbox_versions,
            "STREAM_TOPICS__OUTBOX_PROGRESS": names.outbox_progress,
            "STREAM_TOPICS__CONTROL": names.control,
            "STREAM_TOPICS__REDRIVEN": names.redriven,
            "STREAM_TOPICS__ERASURES": names.erasures,
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@pytest.fixture
def worker_env(names: Names, sandbox: str, tmp_path: Path) -> dict[str, str]:
    env = command_env(names)
    env.update(
        {
            "STREAM_KAFKA__SESSION_TIMEOUT": "10s",
            # A stalled partition restarts the worker; tests need not wait the default.
            "STREAM_KAFKA__STALL_TIMEOUT": "20s",
            "STREAM_TOPICS__PARTITIONS": "3",
            "STREAM_OMETRIA__BASE_URL": sandbox,
            "STREAM_OMETRIA__API_KEY": "it-secret-key-7f3a",
            "STREAM_OMETRIA__FLUSH_INTERVAL": "0.2s",
            "STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND": "20",
            "STREAM_WEB_PORT": str(free_port()),
            "STREAM_DATA_DIR": str(tmp_path / "data"),
        }
    )
    return env


async def start_ready(*workers: Worker) -> None:
    """Start the processes together, then wait until each is ready."""
    for process in workers:
        process.start()
    for process in workers:
        await process.wait_ready()


async def web_get(worker: Worker, path: str) -> httpx.Response:
    """GET `path` on a process's own web port."""
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"http://127.0.0.1:{worker.env['STREAM_WEB_PORT']}{path}")


def second_worker(
    env: dict[str, str], tmp_path: Path, name: str = "b", command: str = "worker"
) -> Worker:
    """Another process of the same deployment: its own port, data directory and log."""
    other = dict(env)
    other["STREAM_WEB_PORT"] = str(free_port())
    other["STREAM_DATA_DIR"] = str(tmp_path / f"data-{name}")
    return Worker(other, tmp_path / f"{command}-{name}.log", command)


def names_settings(names: Names, **topics: object) -> Settings:
    """Settings for a test's own topics and group on the test broker."""
    return load_settings(
        kafka={"bootstrap_servers": BOOTSTRAP},
        app_id=names.app_id,
        topics={
            "events": names.events,
            "dead_letter": names.dead_letter,
            "outbox": names.outbox,
            "outbox_dead_letter": names.outbox_dead_letter,
            "outbox_versions": names.outbox_versions,
            "outbox_progress": names.outbox_progress,
            "control": names.control,
            "redriven": names.redriven,
            "erasures": names.erasures,
            **topics,
        },
    )


@pytest.fixture
async def worker(worker_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Worker]:
    process = Worker(worker_env, tmp_path / "worker.log")
    yield process
    if process.process is not None:
        await process.stop_async()


@pytest.fixture
async def producer() -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await client.start()
    yield client
    await client.stop()


async def read_topic(topic: str, expected: int, timeout: float = 30.0):
    """Every record of a topic, from the start, once at least `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        records = []
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


async def poll(fetch, done, timeout: float = 90.0, interval: float = 0.25):
    """Call `fetch()` until `done(result)` or the deadline; return the last result."""
    deadline = time.monotonic() + timeout
    result = await fetch()
    while not done(result) and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        result = await fetch()
    return result


async def sandbox_get(url: str, path: str):
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


def keep_running(*workers: Worker) -> None:
    """Restart a worker that exited by itself (what the StatefulSet does)."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is not None:
            worker.start()


async def committed_to_the_end(group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: (the group's committed offset, the end offset)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group)
    await consumer.start()
    try:
        # A consumer that subscribes to nothing knows no topic until it asks for one.
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        assert partitions, f"no partitions known for {topic}"
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: ((await consumer.committed(tp)) or 0, ends[tp]) for tp in partitions}
    finally:
        await consumer.stop()


async def outbox_delivered(names: Names, timeout: float = 60) -> None:
    """Wait until the pusher group has committed every outbox partition to its end."""
    positions = await poll(
        lambda: committed_to_the_end(names.pusher_group, names.outbox),
        lambda got: all(c == end for c, end in got.values()),
        timeout=timeout,
    )
    assert all(c == end for c, end in positions.values()), positions
