"""The stream's commands run for a test: worker and CLI processes, an in-process pusher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from stream.ometria.client import OmetriaClient
from stream.runtime.pusher import Pusher
from tests.support.kafka import BOOTSTRAP, Names, names_settings
from tests.support.paths import REPO
from tests.support.scenarios import API_KEY

READY = "Worker]: Ready"


# What each command logs once it does its job.
READY_LINES = {"worker": READY, "push": "pushing outbox partitions"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SANDBOX_ARGS = ("--api-key", "it-secret-key-7f3a", "--rate-limit", "50")


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


def keep_running(*workers: Worker) -> None:
    """Restart a worker that exited by itself (what the StatefulSet does)."""
    for worker in workers:
        if worker.process is not None and worker.process.poll() is not None:
            worker.start()


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """`python -m stream <args>` as the operator runs it; (exit code, stdout + stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "stream",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def metric(worker, name: str, **labels: str) -> float:
    """The sum of the process's samples named exactly `name` (with these labels, if given).

    A name the process does not export fails the test: read as 0, a renamed or unregistered
    metric would pass every check that it is 0.
    """
    text = (await web_get(worker, "/metrics")).text
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert values, f"the process exports no sample {name} {labels or ''}"
    return sum(values)


@contextlib.asynccontextmanager
async def running_pusher(settings, sandbox) -> AsyncIterator[tuple[Pusher, asyncio.Task[None]]]:
    """A pusher of the test's deployment running in this process, and its `run` task."""
    async with OmetriaClient(sandbox, SecretStr(API_KEY)) as client:
        pusher = Pusher(settings, client)
        await pusher.start()
        task = asyncio.ensure_future(pusher.run())
        try:
            yield pusher, task
        finally:
            pusher.stop_soon()
            await asyncio.wait({task}, timeout=10)
            await pusher.close()


async def pusher_outcome(names, sandbox) -> tuple[BaseException | None, str | None]:
    """Run a pusher until it joins the group or stops (a minute at most): what it raised
    (None if nothing), and why it was not ready then."""
    async with running_pusher(names_settings(names, partitions=3), sandbox) as (pusher, task):
        joined = asyncio.ensure_future(pusher.joined.wait())
        await asyncio.wait({task, joined}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()
        why = pusher.not_ready()
    return (task.exception() if task.done() else None), why
