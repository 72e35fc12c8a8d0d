"""The figures: each function measures one repetition and returns its numbers."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.serializers import codecs

from bench import kafka
from bench.gen import EventGenerator, customer_id
from bench.procs import (
    Metrics,
    Worker,
    clean_env,
    du,
    free_port,
    wait_until_read,
    worker_env,
)
from bench.sandbox import Sandbox
from stream.domain.batch_fold import fold_history
from stream.domain.events import parse_event
from stream.domain.mapping import load_mapping
from stream.domain.profile import Profile
from stream.domain.schedule import SCAN_SLICE, ScheduleConfig, due
from stream.domain.sync import SyncRules
from stream.domain.triggers import TriggerConfig

MIB = 1024 * 1024


@dataclass
class Setup:
    """What every figure shares: the run's names, its folder and the knobs."""

    prefix: str  # every topic and app id of the run starts with it
    run_dir: Path
    events_topic: str
    events: int
    partitions: int
    budget: float  # seconds per repetition of c and e before they report a partial rate


# --- a: the ceiling -------------------------------------------------------------------------


async def ceiling(s: Setup) -> dict[str, float]:
    """Raw aiokafka getmany + orjson decode of the whole events topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.BOOTSTRAP, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(s.events_topic, p) for p in range(s.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        decoded = 0
        started = time.monotonic()
        deadline = started + s.budget
        while decoded < s.events and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                decoded += len(records)
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
    return {"events_per_s": decoded / elapsed, "events": decoded, "seconds": elapsed}


# --- b: a bare Faust agent ------------------------------------------------------------------


async def bare_faust(s: Setup, rep: int) -> dict[str, float]:
    """A minimal Faust app counting the topic's events: first to last event."""
    app_id = f"{s.prefix}-b{rep}"
    out = s.run_dir / f"{app_id}.json"
    log = s.run_dir / f"{app_id}.log"
    command = [
        sys.executable, "-m", "bench.bare_faust", "--app-id", app_id, "--topic", s.events_topic,
        "--partitions", str(s.partitions), "--expected", str(s.events), "--out", str(out),
    ]  # fmt: skip
    return await first_to_last(s, command, out, log)


async def first_to_last(s: Setup, command: list[str], out: Path, log: Path) -> dict[str, float]:
    """Run a child that writes {"first", "last"} (wall-clock seconds of its first and last of
    `s.events` events) to `out`; the rate from its first to its last event."""
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *command, env=clean_env(), stdout=sink, stderr=asyncio.subprocess.STDOUT, cwd=s.run_dir
        )
    try:
        deadline = time.monotonic() + 60 + s.budget
        while not await asyncio.to_thread(out.exists):
            if process.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-2000:]
                raise RuntimeError(f"{command[2]} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command[2]} did not see {s.events} events; log: {log}")
            await asyncio.sleep(0.1)
    finally:
        if process.returncode is None:
            # It has written its result (or failed): no need to wait for it to stop.
            process.kill()
            await process.wait()
    result = orjson.loads(await asyncio.to_thread(out.read_bytes))
    elapsed = result["last"] - result["first"]
    return {"events_per_s": (s.events - 1) / elapsed, "events": s.events, "seconds": elapsed}


# --- c, e, g: the full pipeline, one or more workers ----------------------------------------


async def pipeline(
    s: Setup,
    app_id: str,
    sandbox: Sandbox | None,
    workers: int = 1,
    push_apart: bool = False,
    graceful: bool = False,
    drain: bool = False,
    from_first_fold: bool = False,
    produce_when_ready: list[tuple[bytes, bytes]] | None = None,
) -> dict[str, Any]:
    """`workers` x `python -m stream worker` on the events topic: events/s from ready (all
    workers) to the last event folded, within the time budget.

    `push_apart`: the workers only fold (STREAM_OMETRIA__PUSH_IN_WORKER=false) and one
    `python -m stream push` delivers, as deploy/k8s's separate-pusher component runs them.
    `graceful`: stop the processes with SIGTERM (their last batch stored, for g's changelog
    scan) rather than SIGKILL; Faust takes 3-5 s to stop, a minute over the bench's runs.
    `drain`: after the last fold, also wait until the pusher has committed the whole outbox,
    so the CPU seconds (sampled at ready and at the end) include the whole delivery.
    `from_first_fold`: events/s and CPU from the first batch folded instead of from ready, as
    b counts first → last event: a worker whose pusher runs inside it folds for seconds before
    /readyz says ready (the pusher is not ready yet), which the rate from ready leaves out.
    `produce_when_ready`: the events topic starts empty and these records are produced once
    every worker is ready, so none is folded before (two workers: the first to be ready would
    otherwise fold most of the topic alone).
    """
    group = []
    for n in range(workers):
        env = worker_env(
            app_id=app_id,
            events_topic=s.events_topic,
            data_dir=s.run_dir / f"{app_id}-data{n}",
            ometria_url=sandbox.url if sandbox else None,
        )
        if push_apart:
            env["STREAM_OMETRIA__PUSH_IN_WORKER"] = "false"
        group.append(Worker(env, s.run_dir / f"{app_id}-{n}.log"))
    pushers = []
    if push_apart:
        env = {**group[0].env, "STREAM_WEB_PORT": str(free_port())}
        pushers.append(Worker(env, s.run_dir / f"{app_id}-push.log", command="push"))
    try:
        for process in [*pushers, *group]:
            await process.start()
        if from_first_fold:
            ready, at_ready = await first_fold(group)
        else:
            ready = max([await w.wait_ready() for w in group])
            at_ready = sum([(await w.metrics()).read for w in group])
            if produce_when_ready is not None:
                # The workers fold while it is produced: those events count too.
                await kafka.produce(s.events_topic, produce_when_ready, s.partitions)
        ready_at = time.time() - (time.monotonic() - ready)
        cpu_at_ready = [p.cpu_seconds() for p in [*group, *pushers]]
        polled, polled_at = await wait_until_read(group, s.events, ready + s.budget)
        # Up to the last batch folded, not the deadline: the events of a batch are counted
        # once it is folded, so the time spent on the batch still open at the deadline
        # (a few seconds: its window, then its fold) has no events to show for it yet.
        final = [await w.metrics() for w in group]
        read = sum(m.read for m in final)
        finished = max(m.last_fold for m in final)
        applied = sum(m.applied for m in final)
        rss = max(w.peak_rss() for w in group)
        drained_at = math.nan
        if drain and sandbox is not None:
            await outbox_delivered(app_id, ready + s.budget)
            drained_at = time.time()
        cpu = [p.cpu_seconds() - c for p, c in zip([*group, *pushers], cpu_at_ready, strict=True)]
        pusher_rss = max((p.peak_rss() for p in pushers), default=0)
    finally:
        # Each run has its own app id, topics and data dirs: nothing else reads them again.
        stopping = [process.stop(kill=not graceful) for process in [*group, *pushers]]
        await asyncio.gather(*stopping)
    elapsed = finished - ready_at
    if read <= at_ready or elapsed <= 0:
        raise RuntimeError(f"no event folded in {s.budget:.0f} s after ready; logs in {s.run_dir}")
    return {
        "events_per_s": (read - at_ready) / elapsed,
        # The former measure, kept for comparison: events counted by the deadline over the
        # time to the deadline.
        "events_per_s_at_deadline": (polled - at_ready) / (polled_at - ready),
        "events": read - at_ready,
        "seconds": elapsed,
        "complete": read >= s.events,
        "read_at_ready": at_ready,
        "read": read,
        "applied": applied,
        "peak_rss_mib": rss / MIB,
        "pusher_peak_rss_mib": pusher_rss / MIB if pushers else math.nan,
        # From ready to the end (the last fold, or the outbox delivered with `drain`).
        "worker_cpu_s": sum(cpu[: len(group)]),
        "pusher_cpu_s": sum(cpu[len(group) :]) if pushers else math.nan,
        "drained_s_after_last_fold": drained_at - finished,
    }


async def first_fold(group: list[Worker], within: float = 180.0) -> tuple[float, int]:
    """Poll the workers' /metrics (every 50 ms) until they have folded a first batch; return
    when that was seen and the events it counted (left out of the rate, as their time is)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        read = 0
        for worker in group:
            with contextlib.suppress(httpx.HTTPError):  # its web server is not up yet
                read += (await worker.metrics()).read
        if read > 0:
            return time.monotonic(), read
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no event folded in {within:.0f} s; logs: {group[0].log}")


async def outbox_delivered(app_id: str, deadline: float) -> None:
    """Wait until the pusher's group has committed every record of the run's outbox."""
    outbox = f"{app_id}.outbox"
    while True:
        ends = await kafka.end_offsets(outbox)
        done = await kafka.committed(f"{app_id}-pusher", outbox, ends)
        if all(done[p] >= end for p, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"outbox of {app_id} not delivered: {done} of {ends}")
        await asyncio.sleep(0.25)


async def changelog_cost(app_id: str, applied: int) -> dict[str, float]:
    """g: bytes the profile table wrote to its changelog per event, and profile sizes."""
    scan = await kafka.scan(f"{app_id}-customer_to_profile-changelog")
    return {
        "bytes_per_event": (scan.key_bytes + scan.value_bytes) / max(applied, 1),
        "records_per_event": scan.records / max(applied, 1),
        "median_profile_bytes": scan.median_latest_value,
        "profiles": len(scan.latest_value_sizes),
    }


# --- d: delivery at a steady rate -----------------------------------------------------------


@dataclass
class Steady:
    """A worker on its own topic with a seeded customer base, for repeated delivery windows."""

    setup: Setup
    worker: Worker
    topic: str
    app_id: str
    generator: EventGenerator
    sent: int = 0


async def steady_start(
    s: Setup, sandbox: Sandbox, customers: int, max_requests_per_second: float, name: str = "d"
) -> Steady:
    app_id = f"{s.prefix}-{name}"
    topic = f"{app_id}.events"
    await kafka.create_topic(topic, s.partitions)
    env = worker_env(
        app_id=app_id,
        events_topic=topic,
        data_dir=s.run_dir / f"{app_id}-data",
        ometria_url=sandbox.url,
        max_requests_per_second=max_requests_per_second,
    )
    worker = Worker(env, s.run_dir / f"{app_id}.log")
    steady = Steady(s, worker, topic, app_id, EventGenerator(seed=4))
    await worker.start()
    await worker.wait_ready()
    # The customers exist before the measured windows: enrolments are not steady traffic.
    enrolments = [steady.generator.enrol(i) for i in range(customers)]
    steady.sent = await kafka.produce(topic, enrolments, s.partitions)
    await _drained(steady, within=120 + customers / 50)
    return steady


async def steady_window(
    steady: Steady, sandbox: Sandbox, rate: float, seconds: float
) -> dict[str, Any]:
    """Send `rate` events/s for `seconds`, wait until all is folded and delivered; count."""
    sandbox.state.reset(faults=False)
    acceptances = sandbox.acceptances
    acceptances.latencies.clear()
    acceptances.recording = True
    before = await steady.worker.metrics()
    producer = AIOKafkaProducer(bootstrap_servers=kafka.BOOTSTRAP, acks="all", linger_ms=5)
    await producer.start()
    total = int(rate * seconds)
    try:
        started = time.monotonic()
        pending = []
        for n in range(total):
            # Pacing, not synchronisation: event n is due at n / rate seconds.
            due = started + n / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            key, value = steady.generator.activity()
            pending.append(await producer.send(steady.topic, value, key=key))
        await asyncio.gather(*pending)
        send_seconds = time.monotonic() - started
    finally:
        await producer.stop()
    steady.sent += total
    await _drained(steady, within=120 + total / 50)
    acceptances.recording = False
    after = await steady.worker.metrics()
    stats = sandbox.state.stats()
    by_status: dict[str, int] = stats["by_status"]  # type: ignore[assignment]
    accepted_requests = by_status.get("202", 0)
    contacts, custom = int(stats["contacts"]), int(stats["events"])  # type: ignore[call-overload]
    per_k = 1000 / total
    latencies = sorted(acceptances.latencies)
    return {
        "events": total,
        "send_rate": total / send_seconds,
        "requests_per_k": int(stats["requests"]) * per_k,  # type: ignore[call-overload]
        "min_requests_per_k": (math.ceil(contacts / 100) + math.ceil(custom / 100)) * per_k,
        "records_per_k": int(stats["records_accepted"]) * per_k,  # type: ignore[call-overload]
        "min_records_per_k": (contacts + custom) * per_k,
        "batch_fill_pct": 100
        * int(stats["records_accepted"])  # type: ignore[call-overload]
        / max(1, accepted_requests * 100),
        "status_429": by_status.get("429", 0),
        "status_429_per_k": by_status.get("429", 0) * per_k,
        "distinct_contacts": contacts,
        "custom_events": custom,
        "latency_p50_s": _quantile(latencies, 0.50),
        "latency_p95_s": _quantile(latencies, 0.95),
        "latency_p99_s": _quantile(latencies, 0.99),
        "histogram_latency_p50_s": _histogram_quantile(before, after, 0.50),
        "histogram_latency_p99_s": _histogram_quantile(before, after, 0.99),
    }


async def backfill_run(steady: Steady, sandbox: Sandbox, rate: float) -> dict[str, Any]:
    """h: `python -m stream backfill` of every customer, from its start until the stand-in has
    accepted every contact again, against the time Ometria's rate allows at best."""
    customers = len(sandbox.state.contacts(listing_id=None, collection=None))
    sandbox.state.reset(faults=False)
    log = steady.worker.log.with_name(f"{steady.app_id}-backfill.log")
    started = time.monotonic()
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stream",
            "backfill",
            "--force",  # repetitions come within the cooldown of the previous one
            env=steady.worker.env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=log.parent,
        )
        if await process.wait() != 0:
            raise RuntimeError(f"backfill failed, see {log}")
    queued = time.monotonic() - started
    deadline = started + 120 + customers / 10
    while int(sandbox.state.stats()["records_accepted"]) < customers:  # type: ignore[call-overload]
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill not delivered: {sandbox.state.stats()}")
        await asyncio.sleep(0.1)
    seconds = time.monotonic() - started
    stats = sandbox.state.stats()
    by_status: dict[str, int] = stats["by_status"]  # type: ignore[assignment]
    bound = math.ceil(customers / 100) / rate
    return {
        "customers": customers,
        "seconds": seconds,
        "queued_s": queued,
        "bound_s": bound,
        "ratio": seconds / bound,
        "requests": stats["requests"],
        "status_429": by_status.get("429", 0),
    }


async def _drained(steady: Steady, within: float) -> None:
    """Every event sent so far is read and every outbox record delivered (committed)."""
    deadline = time.monotonic() + within
    read, _ = await wait_until_read([steady.worker], steady.sent, deadline)
    if read < steady.sent:
        raise TimeoutError(f"worker read {read} of {steady.sent} events in {within:.0f} s")
    await outbox_delivered(steady.app_id, deadline)


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _histogram_quantile(before: Metrics, after: Metrics, q: float) -> float:
    """Prometheus-style quantile (linear within a bucket) of the window's observations."""
    earlier = dict(before.latency)
    buckets = [(le, count - earlier.get(le, 0.0)) for le, count in after.latency]
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            share = (rank - lower_count) / max(count - lower_count, 1e-9)
            return lower_le + (le - lower_le) * share
        lower_le, lower_count = le, count
    return math.nan


# --- f: state with many profiles ------------------------------------------------------------


def profile_templates(count: int, seed: int = 6) -> list[tuple[bytes, bytes]]:
    """(placeholder id, table value) pairs: real profiles from the project's own fold of a
    generated history (enrolment + a few to a few dozen events), keyed by a placeholder id
    that `profile_values` swaps for each customer's."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    at = datetime.now(UTC) - timedelta(days=30)
    clock_state = {"now": at}

    def clock() -> datetime:
        clock_state["now"] += timedelta(minutes=7)
        return clock_state["now"]

    generator = EventGenerator(seed=seed, clock=clock)
    rules = SyncRules(
        mapping=load_mapping("rivo", None), collection="loyalty", triggers=TriggerConfig()
    )
    templates = []
    for index in range(count):
        _, raw = generator.enrol(_PLACEHOLDER_BASE + index)
        customer = generator.customers[-1]
        history = [raw] + [
            generator.activity(customer)[1] for _ in range(int(rng.expovariate(1 / 9)))
        ]
        events = [parse_event(value) for value in history]
        profile, _ = fold_history(events, rules, datetime.now(UTC))
        assert profile is not None
        placeholder = customer_id(_PLACEHOLDER_BASE + index).encode()
        templates.append((placeholder, codecs.dumps("json", profile.to_json())))
    return templates


_PLACEHOLDER_BASE = 2_000_000_000_000  # 13 digits like real ids, outside the customers' range


def profile_values(
    templates: list[tuple[bytes, bytes]], count: int, *, json_keys: bool = False
) -> Iterator[tuple[bytes, bytes]]:
    """`count` changelog records: key = customer id, value = a template profile as that
    customer (its id and email rewritten). `json_keys`: keys as Faust's JSON key codec writes
    them (`"id"`, quotes included), which the backfill reads."""
    for index in range(count):
        placeholder, value = templates[index % len(templates)]
        key = customer_id(index).encode()
        yield (b'"%s"' % key if json_keys else key), value.replace(placeholder, key)


async def state_populate(
    s: Setup, profiles: int, name: str = "f", *, json_keys: bool = False
) -> dict[str, Any]:
    """Write `profiles` profiles straight to the table's changelog (as the worker would)."""
    app_id = f"{s.prefix}-{name}"
    await kafka.create_topic(f"{app_id}.events", s.partitions)
    changelog = f"{app_id}-customer_to_profile-changelog"
    await kafka.create_topic(changelog, s.partitions, {"cleanup.policy": "compact"})
    templates = profile_templates(500)
    sizes = sorted(len(value) for _, value in templates)
    started = time.monotonic()
    values = profile_values(templates, profiles, json_keys=json_keys)
    written = await kafka.produce(changelog, values, s.partitions)
    return {
        "app_id": app_id,
        "profiles": written,
        "produce_seconds": time.monotonic() - started,
        "median_template_bytes": statistics.median(sizes),
    }


async def backfill_memory(s: Setup, app_id: str, dry_run: bool) -> dict[str, float]:
    """i: `python -m stream backfill` over the changelog `state_populate` wrote: seconds and the
    process's peak RSS (the kernel's ru_maxrss for exactly that child)."""
    env = worker_env(
        app_id=app_id,
        events_topic=f"{app_id}.events",
        data_dir=s.run_dir / f"{app_id}-backfill",
        ometria_url=None,
    )
    log = s.run_dir / f"{app_id}-backfill.log"
    args = ["backfill", "--force", *(["--dry-run"] if dry_run else [])]
    started = time.monotonic()
    with log.open("ab") as out:
        # Popen, not asyncio: os.wait4 (in a thread) gives this child's own peak RSS.
        process = subprocess.Popen(  # noqa: ASYNC220, S603
            [sys.executable, "-m", "stream", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"backfill exited with {process.returncode}, see {log}")
    return {"seconds": time.monotonic() - started, "peak_rss_mib": usage.ru_maxrss * 1024 / MIB}


async def state_recovery(s: Setup, app_id: str, rep: int, within: float) -> dict[str, float]:
    """Fresh data dir → ready (recovery from the changelog alone), then restart → ready."""
    data_dir = s.run_dir / f"{app_id}-data{rep}"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = worker_env(
        app_id=app_id, events_topic=f"{app_id}.events", data_dir=data_dir, ometria_url=None
    )
    result: dict[str, float] = {}
    for phase in ("recover", "restart"):
        worker = Worker(env, s.run_dir / f"{app_id}-{rep}.log")
        try:
            started = await worker.start()
            ready = await worker.wait_ready(within)
            result[f"{phase}_seconds"] = ready - started
            result[f"{phase}_peak_rss_mib"] = worker.peak_rss() / MIB
        finally:
            # SIGTERM, both times: the restart must find the state a stopping worker leaves,
            # and a killed worker stays in the group until its session times out, which the
            # next repetition's recovery would wait out before it is assigned anything (7.6 and
            # 7.8 s of 11.3 s in a `make bench` run).
            await worker.stop()
        result[f"{phase}_disk_mib"] = du(data_dir) / MIB
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


# --- i: the time-based triggers' scan -------------------------------------------------------


def scan_cost(profiles: int, templates: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """The worker's scan work over `profiles` stored profiles, in-process: decode each value
    and ask `stream.domain.schedule.due`, in the scan's slices (what it does under the fold's lock).
    The values are built per slice outside the timing; the outbox and changelog writes for
    what is due are not included (a small share: few profiles are due at any scan)."""
    config = ScheduleConfig()
    now = datetime.now(UTC)
    values = profile_values(templates, profiles)
    busy, longest, fired = 0.0, 0.0, 0
    for _ in range(0, profiles, SCAN_SLICE):
        chunk = [value for _, (_, value) in zip(range(SCAN_SLICE), values, strict=False)]
        started = time.perf_counter()
        for value in chunk:
            fired += len(due(Profile.from_bytes(value), now, config))
        spent = time.perf_counter() - started
        busy += spent
        longest = max(longest, spent)
    return {
        "profiles": profiles,
        "scan_seconds": busy,
        "profiles_per_second": profiles / busy,
        "longest_slice_ms": longest * 1000,
        "due": fired,
    }
