"""Worker processes under measurement: start, readiness, /metrics, peak RSS, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.kafka import BOOTSTRAP

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-5c1e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment without any STREAM_* (a developer's settings must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
    # The worker runs this checkout's code, whatever the venv was installed from.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# STREAM_* settings every worker and pusher of a run gets on top of its own (bench.scale's
# --setting), to measure the same figures under another configuration.
EXTRA_SETTINGS: dict[str, str] = {}


def worker_env(
    *,
    app_id: str,
    events_topic: str,
    data_dir: Path,
    ometria_url: str | None,
    max_requests_per_second: float = 100,
    flush_interval: str = "1s",
) -> dict[str, str]:
    """STREAM_* settings of one `python -m stream worker` (its own topics, port and data)."""
    env = clean_env()
    env.update(
        {
            "STREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "STREAM_KAFKA__SESSION_TIMEOUT": "10s",
            "STREAM_APP_ID": app_id,
            "STREAM_STORE": "rocksdb://",
            "STREAM_DATA_DIR": str(data_dir),
            "STREAM_WEB_PORT": str(free_port()),
            "STREAM_LOG_FORMAT": "text",
            "STREAM_TOPICS__EVENTS": events_topic,
            "STREAM_TOPICS__DEAD_LETTER": f"{app_id}.events.dlq",
            "STREAM_TOPICS__OUTBOX": f"{app_id}.outbox",
            "STREAM_TOPICS__OUTBOX_DEAD_LETTER": f"{app_id}.outbox.dlq",
            "STREAM_TOPICS__OUTBOX_VERSIONS": f"{app_id}.outbox.versions",
            "STREAM_TOPICS__OUTBOX_PROGRESS": f"{app_id}.outbox.progress",
            "STREAM_TOPICS__CONTROL": f"{app_id}.control",
            "STREAM_TOPICS__REDRIVEN": f"{app_id}.redriven",
            "STREAM_TOPICS__ERASURES": f"{app_id}.erasures",
            "STREAM_OMETRIA__API_KEY": API_KEY,
            "STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND": f"{max_requests_per_second:g}",
            "STREAM_OMETRIA__FLUSH_INTERVAL": flush_interval,
            "STREAM_OMETRIA__ERRORS_POLL_INTERVAL": "0",
        }
    )
    if ometria_url is None:
        env["STREAM_OMETRIA__ENABLED"] = "false"
    else:
        env["STREAM_OMETRIA__BASE_URL"] = ometria_url
    env.update(EXTRA_SETTINGS)
    return env


@dataclass
class Metrics:
    """The parts of a worker's /metrics the benchmarks read."""

    events: dict[tuple[str, str], float]  # (type, outcome) → count
    requests: dict[str, float]  # status → count
    batch_records: list[tuple[float, float]]  # (le, cumulative count)
    latency: list[tuple[float, float]]  # (le, cumulative count)
    last_fold: float = 0.0  # Unix time the worker last counted a folded batch in `events`

    @property
    def read(self) -> int:
        """Events read, whatever their outcome."""
        return int(sum(self.events.values()))

    @property
    def applied(self) -> int:
        return int(sum(n for (_, outcome), n in self.events.items() if outcome == "applied"))


def parse_metrics(text: str) -> Metrics:
    events: dict[tuple[str, str], float] = {}
    requests: dict[str, float] = {}
    batch: list[tuple[float, float]] = []
    latency: list[tuple[float, float]] = []
    last_fold = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "loyalty_events_total":
                events[(labels["type"], labels["outcome"])] = sample.value
            elif sample.name == "ometria_push_requests_total":
                requests[labels["status"]] = sample.value
            elif sample.name == "ometria_push_batch_records_bucket":
                batch.append((float(labels["le"]), sample.value))
            elif sample.name == "ometria_push_latency_seconds_bucket":
                latency.append((float(labels["le"]), sample.value))
            elif sample.name == "loyalty_last_fold_timestamp_seconds":
                last_fold = sample.value
    return Metrics(events, requests, sorted(batch), sorted(latency), last_fold)


class Worker:
    """`python -m stream worker` as a child process with its own environment and log."""

    def __init__(self, env: dict[str, str], log: Path, command: str = "worker") -> None:
        self.env = env
        self.log = log
        self.command = command
        self.port = int(env["STREAM_WEB_PORT"])
        self.process: asyncio.subprocess.Process | None = None
        self._http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    async def start(self) -> float:
        """Start the process; return the monotonic time it was started at."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            started = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "stream",
                self.command,
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.log.parent,
            )
        return started

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {self.process.returncode}:\n{tail}")

    async def wait_ready(self, within: float = 180.0) -> float:
        """Poll /readyz (tables recovered, not rebalancing); return when it first said yes."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                response = await self._http.get("/readyz")
                if response.status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                pass  # the web server is not up yet
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker not ready after {within:.0f} s; log: {self.log}")

    async def metrics(self) -> Metrics:
        self.check_alive()
        response = await self._http.get("/metrics")
        response.raise_for_status()
        return parse_metrics(response.text)

    def peak_rss(self) -> int:
        """The process's peak resident set size so far (VmHWM), in bytes."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far (user + system), in seconds."""
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def reset_peak_rss(self) -> None:
        """Start VmHWM again from the current RSS (Linux's clear_refs 5), so a later
        `peak_rss` covers only what came after, not the recovery before it."""
        assert self.process is not None
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    async def stop(self, within: float = 60.0, *, kill: bool = False) -> int | None:
        """SIGTERM and wait (a worker finishes its batch, commits and leaves); SIGKILL if stuck.

        `kill`: SIGKILL at once, for a process whose run is measured and whose state nothing
        reads again.
        """
        await self._http.aclose()
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), within)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


async def wait_until_read(
    workers: list[Worker], target: int, deadline: float, interval: float = 1.0
) -> tuple[int, float]:
    """Poll the workers' /metrics until together they read `target` events or the deadline
    (monotonic) passes; return (events read, monotonic time of that reading).

    A scrape costs the worker what it measures (a few percent at 4 a second), so it polls once
    a second, and often (every 50 ms) only once the target or the deadline is due within it.
    """
    first: tuple[int, float] | None = None
    while True:
        read = sum([(await w.metrics()).read for w in workers])
        now = time.monotonic()
        if read >= target or now >= deadline:
            return read, now
        if first is None:
            first = (read, now)
        wait = min(interval, deadline - now)
        if read > first[0]:
            due = (target - read) * (now - first[1]) / (read - first[0])
            wait = min(wait, due)
        await asyncio.sleep(max(0.05, wait))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc/<pid>/stat, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (in parentheses, which may hold spaces): utime and stime
    # are the 14th and 15th fields of the whole line.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def du(path: Path) -> int:
    """Bytes on disk under `path` (allocated blocks, like `du`)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total
