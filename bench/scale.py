"""`make bench-scale` (`python -m bench.scale`): the scale figures of issue 23, in one table.

b and q (the bare Faust agent and Quix Streams) and c (the pipeline, pusher inside and apart)
each read the whole events topic; then the steady state at `--small-profiles` and `--profiles`
customers (recovery of the large one included), a standby takeover on the large one's state,
and e (two workers). See bench/README.md for what each figure measures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import math
import os
import platform
import random
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import figures, kafka, procs
from bench import sandbox as stand_in
from bench.gen import EventGenerator, Record, ticking_clock
from bench.procs import REPO, Worker, free_port, worker_env
from bench.run import Report, _fmt, _recorded, _step

RESULTS = REPO / "bench" / "results"
FIGURES = "bqcsrte"
QUIX_PYTHON = REPO / ".venv" / "quix" / "bin" / "python"
MIB = 1024 * 1024

B_RATE = "bare Faust agent (first → last event)"
Q_RATE = "Quix Streams, RocksDB state, per-customer fold (first → last event)"
C_RATE = "pusher inside (first → last event folded)"
C_APART_RATE = "pusher apart (first → last event folded)"
E_RATE = "two workers, same app id (both ready → last event folded)"
# The targets, printed beside the figures they bound (ratios against this run's b, q).
TARGETS = {
    ("c", C_APART_RATE): "≥ 10,000",
    ("c", "c/b, pusher apart"): "≥ 1.2",
    ("c", "c/q, pusher apart"): "≥ 0.4",
    ("c", "c/b, pusher inside"): "≥ 0.9",
    ("s", "worker peak RSS ratio, large / small"): "≤ 1.3",
    ("s", "pusher peak RSS ratio, large / small"): "≤ 1.3",
    ("r", "recovery rate"): "≥ 30,000",
    ("t", "standby takeover: kill → a probe on every partition folded"): "≤ 30",
}


class ScaleReport(Report):
    """make bench's table with one more column: the issue's target for the row, if any."""

    def markdown(self) -> str:
        lines = [
            "| figure | measure | min | median | max | unit | target |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        # By figure, each in the order measured.
        for row in sorted(self.rows.values(), key=lambda r: FIGURES.index(r.figure)):
            summary = row.summary()
            cells = [_fmt(summary[k], row.digits) for k in ("min", "median", "max")]
            target = TARGETS.get((row.figure, row.label), "")
            lines.append(
                f"| {row.figure} | {row.label} | {' | '.join(cells)} | {row.unit} | {target} |"
            )
        for figure, error in self.errors.items():
            lines.append(f"| {figure} | failed: {error} | | | | | |")
        return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="Scale figures on the local Kafka (see bench/README.md).",
    )
    add = parser.add_argument
    add("--only", default=FIGURES, help=f"figures to run, letters of {FIGURES} (default: all)")
    add("--events", type=int, default=100_000, help="events for b, q, c, e (default: %(default)s)")
    add("--customers", type=int, default=10_000, help="customers in them (default: %(default)s)")
    add("--partitions", type=int, default=8, help="partitions of every topic (default: 8)")
    add("--repeat", type=int, default=1, help="repetitions of b, q and c (default: 1)")
    add(
        "--deadline",
        type=float,
        default=300.0,
        help="seconds a run may take to read its whole topic before it fails (default: 300)",
    )
    add(
        "--profiles",
        type=int,
        default=1_000_000,
        help="s, r, t: customers in the large table (default: %(default)s)",
    )
    add(
        "--small-profiles",
        type=int,
        default=10_000,
        help="s: customers in the small table (default: %(default)s)",
    )
    add(
        "--steady-events",
        type=int,
        default=50_000,
        help="s: events folded over each table's customers (default: %(default)s)",
    )
    add("--recovery-timeout", type=float, default=600.0, help="r, t: seconds to wait for ready")
    add(
        "--quix-python",
        type=Path,
        default=QUIX_PYTHON,
        help="q: an interpreter with quixstreams (default: %(default)s, made by make bench-scale)",
    )
    add(
        "--setting",
        action="append",
        default=[],
        metavar="STREAM_X=VALUE",
        help="a setting every worker and pusher of the run gets (repeatable)",
    )
    add("--keep", action="store_true", help="keep this run's topics and data directories")
    add("--out", type=Path, default=RESULTS / "scale.json", help="JSON results (%(default)s)")
    args = parser.parse_args(argv)
    chosen = set(args.only.replace(",", "").replace(" ", ""))
    if not chosen or chosen - set(FIGURES):
        parser.error(f"--only takes letters from {FIGURES}, got {args.only!r}")
    if "t" in chosen:
        chosen.add("s")  # the takeover starts from the large steady state's tables
    args.figures = [f for f in FIGURES if f in chosen]
    settings = dict(item.partition("=")[::2] for item in args.setting)
    if any(not key.startswith("STREAM_") for key in settings):
        parser.error(f"--setting takes STREAM_NAME=VALUE, got {args.setting}")
    procs.EXTRA_SETTINGS.update(settings)
    # Absolute (not resolved: a venv's python is a symlink to the base interpreter): the
    # child runs in the run's folder.
    args.quix_python = args.quix_python.absolute()
    return args


async def run(args: argparse.Namespace) -> ScaleReport:
    run_id = "s" + datetime.now(UTC).strftime("%m%d%H%M") + "-" + uuid.uuid4().hex[:4]
    prefix = f"bench-{run_id}"
    run_dir = RESULTS / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    s = figures.Setup(
        prefix=prefix,
        run_dir=run_dir,
        events_topic=f"{prefix}.events",
        events=args.events,
        partitions=args.partitions,
        budget=args.deadline,
    )
    report = ScaleReport()
    report.notes.append(f"run {run_id}: logs in {run_dir.relative_to(REPO)}")
    print(f"bench-scale: run {run_id}, figures {','.join(args.figures)}, logs in {run_dir}")
    try:
        await _figures(args, s, report)
    finally:
        if not args.keep:
            # Quix names its changelog topics changelog__<group>--<topic>--<store>.
            deleted = await kafka.delete_topics(prefix)
            deleted += await kafka.delete_topics(f"changelog__{prefix}")
            for data in run_dir.glob("*-data*"):
                shutil.rmtree(data, ignore_errors=True)
            print(f"bench-scale: deleted {len(deleted)} topics of this run", flush=True)
    return report


async def _figures(args: argparse.Namespace, s: figures.Setup, report: ScaleReport) -> None:
    wanted = set(args.figures)
    records: list[Record] = []
    if wanted & set("bqce"):
        await _step("setup", report, functools.partial(_produce_events, args, s, report, records))
        if "setup" in report.errors:
            return
    if wanted & set("bqc"):
        await _step("b, q, c", report, functools.partial(_throughput, args, s, report))
    large: dict[str, Any] = {}
    if "s" in wanted:
        await _step("s, r", report, functools.partial(_steady, args, s, report, large))
    if "t" in wanted and large:
        await _step("t", report, functools.partial(_takeover, args, s, report, large))
    if "e" in wanted:
        await _step("e", report, functools.partial(_two_workers, args, s, report, records))


async def _produce_events(
    args: argparse.Namespace, s: figures.Setup, report: Report, records: list[Record]
) -> None:
    await kafka.create_topic(s.events_topic, s.partitions)
    start = datetime.now(UTC) - timedelta(milliseconds=args.events) - timedelta(minutes=1)
    generator = EventGenerator(seed=2, clock=ticking_clock(start, timedelta(milliseconds=1)))
    records.extend(generator.stream(args.events, args.customers))
    started = time.monotonic()
    await kafka.produce(s.events_topic, records, s.partitions)
    report.notes.append(
        f"{args.events:,} events for {args.customers:,} customers on {s.partitions} partitions, "
        f"produced in {time.monotonic() - started:.1f} s"
    )


# --- b, q, c: the same topic, each read whole, side by side ---------------------------------


async def _throughput(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    wanted = set(args.figures)
    async with stand_in.running(rate_limit=0) as sandbox:
        for rep in range(args.repeat):
            # One repetition's runs back to back: the machine's speed drifts over minutes.
            if "b" in wanted:
                await _recorded("b", report, _b(s, rep, report))
            if "q" in wanted:
                await _recorded("q", report, _q(args, s, rep, report))
            if "c" in wanted:
                for apart in (False, True):
                    sandbox.state.reset(faults=False)
                    await _recorded("c", report, _c(s, rep, sandbox, apart, report))
    inside, apart = report.values("c", C_RATE), report.values("c", C_APART_RATE)
    for name, tops in (("pusher inside", inside), ("pusher apart", apart)):
        _ratios(report, "c", f"c/b, {name}", tops, report.values("b", B_RATE))
        _ratios(report, "c", f"c/q, {name}", tops, report.values("q", Q_RATE))
    _ratios(report, "q", "q/b", report.values("q", Q_RATE), report.values("b", B_RATE))


async def _b(s: figures.Setup, rep: int, report: Report) -> None:
    numbers = await figures.bare_faust(s, rep)
    report.detail("b", numbers)
    report.add("b", B_RATE, "events/s", numbers["events_per_s"])


async def _q(args: argparse.Namespace, s: figures.Setup, rep: int, report: Report) -> None:
    group = f"{s.prefix}-q{rep}"
    out = s.run_dir / f"{group}.json"
    command = [
        str(args.quix_python), "-m", "bench.quix_fold", "--bootstrap", kafka.BOOTSTRAP,
        "--group", group, "--topic", s.events_topic, "--expected", str(s.events),
        "--out", str(out), "--state-dir", str(s.run_dir / f"{group}-data"),
    ]  # fmt: skip
    numbers = await figures.first_to_last(s, command, out, s.run_dir / f"{group}.log")
    report.detail("q", numbers)
    report.add("q", Q_RATE, "events/s", numbers["events_per_s"])


async def _c(
    s: figures.Setup, rep: int, sandbox: stand_in.Sandbox, apart: bool, report: Report
) -> None:
    app_id = f"{s.prefix}-c{rep}{'p' if apart else ''}"
    numbers = await figures.pipeline(
        s, app_id, sandbox, push_apart=apart, drain=True, from_first_fold=True
    )
    report.detail("c", {"push_apart": apart, **numbers})
    if not numbers["complete"]:
        raise RuntimeError(f"{app_id} read {numbers['read']:,} of {s.events:,} events")
    per_k = 1000 / numbers["events"]
    if apart:
        report.add("c", C_APART_RATE, "events/s", numbers["events_per_s"])
        report.add("c", "pusher apart: worker CPU per 1,000 events", "s",
                   numbers["worker_cpu_s"] * per_k, 3)  # fmt: skip
        report.add("c", "pusher apart: pusher CPU per 1,000 events", "s",
                   numbers["pusher_cpu_s"] * per_k, 3)  # fmt: skip
    else:
        report.add("c", C_RATE, "events/s", numbers["events_per_s"])
        report.add("c", "pusher inside: worker CPU per 1,000 events (fold + delivery)", "s",
                   numbers["worker_cpu_s"] * per_k, 3)  # fmt: skip


def _ratios(
    report: Report, figure: str, name: str, tops: list[float], bottoms: list[float]
) -> None:
    for top, bottom in zip(tops, bottoms, strict=False):
        report.add(figure, name, "x", top / bottom, 3)


async def _two_workers(
    args: argparse.Namespace, s: figures.Setup, report: Report, records: list[Record]
) -> None:
    async with stand_in.running(rate_limit=0) as sandbox:
        for rep in range(args.repeat):
            sandbox.state.reset(faults=False)
            # The same events on a topic of its own, produced once both workers are ready.
            app_id = f"{s.prefix}-e{rep}"
            own = dataclasses.replace(s, events_topic=f"{app_id}.events")
            await kafka.create_topic(own.events_topic, s.partitions)
            numbers = await figures.pipeline(
                own, app_id, sandbox, workers=2, produce_when_ready=records
            )
            report.detail("e", numbers)
            if not numbers["complete"]:
                raise RuntimeError(f"e read {numbers['read']:,} of {s.events:,} events")
            report.add("e", E_RATE, "events/s", numbers["events_per_s"])

    _ratios(report, "e", "speed-up (e / c pusher inside)", report.values("e", E_RATE),
            report.values("c", C_RATE))  # fmt: skip


# --- s, r: steady state at two table sizes; recovery of the large one ------------------------


def spread_events(customers: int, events: int, seed: int = 8) -> Iterator[Record]:
    """`events` events of the mix, each for a customer drawn uniformly from `customers`
    customers already in the table (as `figures.profile_values` names them)."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test data, not secrets)
    start = datetime.now(UTC) - timedelta(milliseconds=events) - timedelta(minutes=1)
    generator = EventGenerator(seed=seed, clock=ticking_clock(start, timedelta(milliseconds=1)))
    known: dict[int, Any] = {}
    for _ in range(events):
        index = rng.randrange(customers)
        customer = known.get(index) or known.setdefault(index, generator.existing(index))
        yield generator.activity(customer)


async def _steady(
    args: argparse.Namespace, s: figures.Setup, report: Report, large: dict[str, Any]
) -> None:
    async with stand_in.running(rate_limit=0) as sandbox:
        rows = {}
        for name, customers in (("small", args.small_profiles), ("large", args.profiles)):
            sandbox.state.reset(faults=False)
            numbers = await steady_state(args, s, sandbox, customers, f"s{name}")
            report.detail("s", numbers)
            rows[name] = numbers
            n = f"{customers:,} customers"
            report.add("s", f"{n}: events/s (first → last event folded)", "events/s",
                       numbers["events_per_s"])  # fmt: skip
            report.add("s", f"{n}: worker peak RSS while folding", "MiB",
                       numbers["worker_fold_peak_rss_mib"])  # fmt: skip
            report.add("s", f"{n}: pusher peak RSS", "MiB", numbers["pusher_peak_rss_mib"])
            per_k = 1000 / numbers["events"]
            report.add("s", f"{n}: worker CPU per 1,000 events", "s",
                       numbers["worker_cpu_s"] * per_k, 3)  # fmt: skip
            report.add("s", f"{n}: pusher CPU per 1,000 events", "s",
                       numbers["pusher_cpu_s"] * per_k, 3)  # fmt: skip
            report.notes.append(
                f"s: {customers:,} profiles written to the changelog in "
                f"{numbers['changelog_written_s']:.0f} s, then {numbers['events']:,} events"
            )
            if name == "large":
                large.update(numbers)
                report.add("r", f"recovery of {n} (start → ready)", "s",
                           numbers["recover_seconds"], 1)  # fmt: skip
                report.add("r", "recovery rate", "profiles/s",
                           customers / numbers["recover_seconds"])  # fmt: skip
                if numbers["recovery_per_second"] is not None:
                    report.add("r", "recovery rate, bulk reader's own (/readyz)", "profiles/s",
                               numbers["recovery_per_second"])  # fmt: skip
                report.add("r", "worker peak RSS while recovering", "MiB",
                           numbers["recover_peak_rss_mib"])  # fmt: skip
    for who in ("worker", "pusher"):
        key = f"{who}_fold_peak_rss_mib" if who == "worker" else "pusher_peak_rss_mib"
        report.add("s", f"{who} peak RSS ratio, large / small", "x",
                   rows["large"][key] / rows["small"][key], 2)  # fmt: skip


async def steady_state(
    args: argparse.Namespace,
    s: figures.Setup,
    sandbox: stand_in.Sandbox,
    customers: int,
    name: str,
) -> dict[str, Any]:
    """A changelog of `customers` real profiles (figure f's), a worker (rocksdb://, pusher
    apart) that recovers it, then folds `--steady-events` events spread over those customers.
    The large run's worker stops gracefully (its RocksDB state is the takeover's start)."""
    populated = await figures.state_populate(s, customers, name=name)
    app_id = populated["app_id"]
    topic = f"{app_id}.events"
    events = list(spread_events(customers, args.steady_events))
    await kafka.produce(topic, events, s.partitions)
    data_dir = s.run_dir / f"{app_id}-data"
    env = worker_env(app_id=app_id, events_topic=topic, data_dir=data_dir, ometria_url=sandbox.url)
    env["STREAM_OMETRIA__PUSH_IN_WORKER"] = "false"
    worker = Worker(env, s.run_dir / f"{app_id}.log")
    pusher = Worker(
        {**env, "STREAM_WEB_PORT": str(free_port())}, s.run_dir / f"{app_id}-push.log", "push"
    )
    try:
        await pusher.start()
        started = await worker.start()
        ready, body = await ready_with_body(worker, args.recovery_timeout)
        recover_rss = worker.peak_rss()
        # From here VmHWM covers the fold only: the recovery's peak is reported apart.
        worker.reset_peak_rss()
        # From the first batch folded (at once, or a moment after ready), as c counts.
        first, at_first = await figures.first_fold([worker])
        first_at = time.time() - (time.monotonic() - first)
        cpu_at_first = worker.cpu_seconds(), pusher.cpu_seconds()
        read, _ = await figures.wait_until_read([worker], len(events), ready + args.deadline)
        if read < len(events):
            raise TimeoutError(f"{app_id}: read {read:,} of {len(events):,} in {args.deadline} s")
        final = await worker.metrics()
        await figures.outbox_delivered(app_id, ready + args.deadline)
        numbers = {
            "customers": customers,
            "changelog_written_s": populated["produce_seconds"],
            "events": final.read - at_first,
            "applied": final.applied,
            "events_per_s": (final.read - at_first) / (final.last_fold - first_at),
            "recover_seconds": ready - started,
            "recovery_per_second": body.get("recovery", {}).get("per_second"),
            "recover_peak_rss_mib": recover_rss / MIB,
            "worker_fold_peak_rss_mib": worker.peak_rss() / MIB,
            "pusher_peak_rss_mib": pusher.peak_rss() / MIB,
            "worker_cpu_s": worker.cpu_seconds() - cpu_at_first[0],
            "pusher_cpu_s": pusher.cpu_seconds() - cpu_at_first[1],
            "contacts_delivered": len(sandbox.state.contacts(listing_id=None, collection=None)),
            "app_id": app_id,
            "data_dir": str(data_dir),
            "events_topic": topic,
        }
    finally:
        # SIGTERM: the worker stores its last batch and offsets (the takeover starts from them).
        await asyncio.gather(worker.stop(), pusher.stop(kill=True))
    return numbers


async def ready_with_body(worker: Worker, within: float) -> tuple[float, dict[str, Any]]:
    """Like `Worker.wait_ready`, also returning the /readyz body that said ready."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}", timeout=10) as http:
        while time.monotonic() < deadline:
            worker.check_alive()
            try:
                response = await http.get("/readyz")
                if response.status_code == 200:
                    return time.monotonic(), dict(response.json())
            except httpx.HTTPError:
                pass  # not serving yet
            await asyncio.sleep(0.1)
    raise TimeoutError(f"not ready after {within:.0f} s; log: {worker.log}")


# --- t: a standby takeover against a cold recovery of the same partitions ------------------


async def _takeover(
    args: argparse.Namespace, s: figures.Setup, report: Report, large: dict[str, Any]
) -> None:
    numbers = await takeover(args, s, large)
    report.detail("t", numbers)
    n = f"{numbers['victim_profiles_estimate']:,.0f}"
    report.add("t", "standby takeover: kill → a probe on every partition folded", "s",
               numbers["takeover_seconds"], 1)  # fmt: skip
    report.add("t", "standby takeover: rebalance seen → probes folded", "s",
               numbers["takeover_after_rebalance_seconds"], 1)  # fmt: skip
    report.add("t", f"cold recovery of the same partitions (~{n} profiles): start → probes folded",
               "s", numbers["cold_seconds"], 1)  # fmt: skip
    report.add("t", "cold recovery: start → ready", "s", numbers["cold_ready_seconds"], 1)
    if numbers["changelog_records_left_at_takeover"] is not None:
        report.add("t", "changelog records the standbys lagged at the takeover", "",
                   numbers["changelog_records_left_at_takeover"])  # fmt: skip


async def takeover(
    args: argparse.Namespace, s: figures.Setup, large: dict[str, Any]
) -> dict[str, Any]:
    """Two workers (same app id, rocksdb://, Faust's default of one standby replica) on the
    large table, each starting from a copy of the steady-state worker's stores: both hold
    every partition up to date, as a long-running pair's actives and standbys do. A batch
    is folded with both up (the standbys must follow it), then one is killed (SIGKILL): seconds
    until the survivor has folded a probe on every partition. Then the survivor stops, the
    victim's partitions are deleted from its stores, and it starts alone: seconds until it
    has recovered them (the cold path) and folded a probe on every partition again."""
    app_id, topic = large["app_id"], large["events_topic"]
    customers = large["customers"]
    source = Path(large["data_dir"])
    dirs = [s.run_dir / f"{app_id}-t{n}-data" for n in range(2)]
    for target in dirs:
        await asyncio.to_thread(shutil.copytree, source, target)
    workers = [
        Worker(
            worker_env(app_id=app_id, events_topic=topic, data_dir=d, ometria_url=None),
            s.run_dir / f"{app_id}-t{n}.log",
        )
        for n, d in enumerate(dirs)
    ]
    victim, survivor = workers
    deadline = time.monotonic() + args.recovery_timeout
    probes = probe_events(customers, s.partitions)
    try:
        for worker in workers:
            await worker.start()
        owners = await settled(workers, topic, s.partitions, deadline)
        # A batch with both up: the survivor's standbys must apply its changelog records.
        batch = list(spread_events(customers, 2_000, seed=11))
        await kafka.produce(topic, batch, s.partitions)
        await figures.wait_until_read(workers, len(batch), deadline)
        await committed_all(app_id, topic, deadline)
        await quiet(workers, deadline)
        victim_parts = owners[0]
        before = (await survivor.metrics()).read
        assert victim.process is not None
        victim.process.kill()
        killed = time.monotonic()
        await kafka.produce(topic, probes, s.partitions)
        rebalance, folded = await probes_folded(survivor, before + len(probes), deadline)
        await survivor.stop()  # SIGTERM: its stores are the cold run's start
    finally:
        await asyncio.gather(*(w.stop(kill=True) for w in workers))
    lag = recovered_at_takeover(survivor.log.read_text(errors="replace"), victim_parts)
    removed = drop_partitions(dirs[1], victim_parts)
    cold = Worker(survivor.env, s.run_dir / f"{app_id}-cold.log")
    try:
        started = await cold.start()
        await kafka.produce(topic, probe_events(customers, s.partitions, seed=13), s.partitions)
        ready = await cold.wait_ready(args.recovery_timeout)
        read, cold_done = await figures.wait_until_read(
            [cold], len(probes), started + args.recovery_timeout, interval=0.2
        )
        if read < len(probes):
            raise TimeoutError(f"cold run folded {read} of {len(probes)} probes")
    finally:
        await cold.stop(kill=True)
    return {
        "victim_partitions": victim_parts,
        "victim_profiles_estimate": customers * len(victim_parts) / s.partitions,
        "stores_removed": removed,
        "changelog_records_left_at_takeover": lag,
        "takeover_seconds": folded - killed,
        "rebalance_seen_seconds": rebalance - killed,
        "takeover_after_rebalance_seconds": folded - rebalance,
        "cold_ready_seconds": ready - started,
        "cold_seconds": cold_done - started,
    }


def recovered_at_takeover(log: str, partitions: list[int]) -> int | None:
    """Changelog records of `partitions` the survivor still had to read when it took them
    over (what its standbys lagged): highwater minus where the reading started, from the
    last pair of tables Faust's recovery logs. None if the log has no such tables."""
    highwaters = _last_table(log, "Highwater for active changelog partitions")
    starts = _last_table(log, "active offsets at start of reading")
    if not highwaters or not starts:
        return None
    return sum(highwaters[p] - starts.get(p, 0) for p in partitions if p in highwaters)


def _last_table(log: str, title: str) -> dict[int, int]:
    """partition → offset of the last table under `title` (rows `| topic | p | offset |`)."""
    at = log.rfind(title)
    if at < 0:
        return {}
    rows: dict[int, int] = {}
    for line in log[at:].splitlines()[1:]:
        if line.startswith("+"):
            continue  # the table's borders
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3:
            break
        if cells[1].isdigit() and cells[2].isdigit():
            rows[int(cells[1])] = int(cells[2])
    return rows


def probe_events(customers: int, partitions: int, seed: int = 12) -> list[Record]:
    """One event for an existing customer on each partition."""
    generator = EventGenerator(seed=seed)
    found: dict[int, Record] = {}
    for index in range(customers):
        key = str(generator.existing(index).id).encode()
        p = kafka.partition_of(key, partitions)
        if p not in found:
            found[p] = generator.activity(generator.existing(index))
        if len(found) == partitions:
            break
    return list(found.values())


async def settled(
    workers: list[Worker], topic: str, partitions: int, deadline: float
) -> list[list[int]]:
    """Wait until every worker is ready and each folds a share of the events partitions that
    together cover them once; return each worker's partitions (from its consumer-lag gauge)."""
    while True:
        shares = []
        for worker in workers:
            try:
                await worker.wait_ready(max(1.0, deadline - time.monotonic()))
                text = (await worker._http.get("/metrics")).text
            except httpx.HTTPError:
                text = ""
            shares.append(sorted(_lag_partitions(text, topic)))
        every = sorted(p for share in shares for p in share)
        if all(shares) and every == list(range(partitions)):
            return shares
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers did not settle: {shares}")
        await asyncio.sleep(0.5)


def _lag_partitions(text: str, topic: str) -> set[int]:
    from prometheus_client.parser import text_string_to_metric_families

    found = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loyalty_consumer_lag" and sample.labels.get("topic") == topic:
                found.add(int(sample.labels["partition"]))
    return found


async def committed_all(group: str, topic: str, deadline: float) -> None:
    """Wait until the group has committed the topic's end on every partition (nothing a
    later reader would fold again)."""
    while True:
        ends = await kafka.end_offsets(topic)
        done = await kafka.committed(group, topic, ends)
        if all(done[p] >= end for p, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group} has not committed {topic}: {done} of {ends}")
        await asyncio.sleep(0.25)


async def quiet(workers: list[Worker], deadline: float, window: float = 2.0) -> None:
    """Wait until each worker used under 10% of a core over `window` seconds: the standbys
    have applied what the batch wrote (Faust reports no standby progress of its own)."""
    while True:
        before = [w.cpu_seconds() for w in workers]
        await asyncio.sleep(window)
        used = [w.cpu_seconds() - b for w, b in zip(workers, before, strict=True)]
        if max(used) < 0.1 * window:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers still busy: {used} s of CPU in {window} s")


async def probes_folded(worker: Worker, target: int, deadline: float) -> tuple[float, float]:
    """Poll the worker until it has read `target` events; return when it first said not
    ready (the group's rebalance seen) and when it had folded them."""
    rebalance = math.nan
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{worker.port}", timeout=10) as http:
        while time.monotonic() < deadline:
            worker.check_alive()
            now = time.monotonic()
            if math.isnan(rebalance) and (await http.get("/readyz")).status_code != 200:
                rebalance = now
            if (await worker.metrics()).read >= target:
                return rebalance, now
            await asyncio.sleep(0.1)
    raise TimeoutError(f"probes not folded; log: {worker.log}")


def drop_partitions(data_dir: Path, partitions: list[int]) -> list[str]:
    """Delete every table's store of these partitions (Faust's rocksdb:// keeps one database
    per table partition, `<table>-<partition>.db`)."""
    removed = []
    for p in partitions:
        for store in data_dir.rglob(f"*-{p}.db"):
            shutil.rmtree(store)
            removed.append(str(store.relative_to(data_dir)))
    if not removed:
        raise RuntimeError(f"no stores of partitions {partitions} under {data_dir}")
    return removed


def write_json(args: argparse.Namespace, report: Report, seconds: float) -> None:
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    doc = {
        "finished_at": datetime.now(UTC).isoformat(),
        "duration_s": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "bootstrap": kafka.BOOTSTRAP,
        },
        "config": config,
        "figures": [
            {"figure": r.figure, "measure": r.label, "unit": r.unit, **r.summary()}
            for r in report.rows.values()
        ],
        "details": report.details,
        "notes": report.notes,
        "errors": report.errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if set(args.figures) & {"q"} and not args.quix_python.exists():
        print(f"q needs {args.quix_python}: run `make bench-scale`", file=sys.stderr)
        return 2
    started = time.monotonic()
    report = asyncio.run(run(args))
    seconds = time.monotonic() - started
    write_json(args, report, seconds)
    print()
    print(report.markdown())
    print()
    for note in report.notes:
        print(f"- {note}")
    print(f"- took {seconds / 60:.1f} min; results in {args.out}")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
