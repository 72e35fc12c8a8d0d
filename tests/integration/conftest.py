"""Integration fixtures: the real Kafka broker, the Ometria stand-in and a worker process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from stream.ops.sandbox import SandboxConfig, running_sandbox
from tests.support.kafka import BOOTSTRAP, Names
from tests.support.paths import REPO
from tests.support.processes import SANDBOX_ARGS, Worker, command_env, free_port


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


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
