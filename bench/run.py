"""`python -m bench`: run the figures, print a Markdown table, write bench/results/latest.json."""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import platform
import shutil
import statistics
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench import figures, kafka
from bench import sandbox as stand_in
from bench.gen import DEFAULT_MIX, EventGenerator, parse_mix, ticking_clock

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = "abcdefghij"
# `make bench` stays within its ten minutes; i (a million profiles) runs with `make bench-state`.
DEFAULT_FIGURES = "abcdefgh"
# Figures that reuse another's runs: e compares with c's single worker, g reads c's changelogs.
NEEDS = {"e": "c", "g": "c"}
A_RATE = "ceiling: aiokafka getmany + orjson"
B_RATE = "bare Faust agent (first → last event)"
C_RATE = "full pipeline (ready → last event folded)"
C_APART_RATE = "full pipeline, pusher apart (`push`)"
E_RATE = "two workers, same app id (ready → last event folded)"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput, delivery, scale-out and state figures on the local Kafka "
        "(see bench/README.md).",
    )
    add = parser.add_argument
    add("--only", default=DEFAULT_FIGURES, help="figures to run, e.g. a,b,c (default: a to h)")
    add("--events", type=int, default=200_000, help="events for a, b, c, e (default: %(default)s)")
    add("--customers", type=int, default=20_000, help="customers in them (default: %(default)s)")
    add("--partitions", type=int, default=8, help="partitions of every topic (default: 8)")
    add(
        "--mix",
        type=parse_mix,
        default=DEFAULT_MIX,
        help="type weights, e.g. points.earned=80,tier.changed=5",
    )
    add("--repeat", type=int, default=3, help="repetitions of every figure (default: 3)")
    add(
        "--budget",
        type=float,
        default=25.0,
        help="seconds one repetition of a, c or e may read before it reports the rate over "
        "what it read so far (default: %(default)s)",
    )
    add(
        "--apart",
        action="store_true",
        help="c: also run once with the pusher in its own process, as the separate-pusher "
        "component deploys it (half a minute more)",
    )
    add("--rate", type=float, default=1000.0, help="d: events per second (default: 1000)")
    add("--seconds", type=float, default=10.0, help="d: seconds of steady traffic (default: 10)")
    add(
        "--d-customers", type=int, default=5000, help="d: customers enrolled before (default: 5000)"
    )
    add(
        "--d-requests-per-second",
        type=float,
        default=20.0,
        help="d: the stand-in's rate limit and the worker's "
        "STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND (default: %(default)s)",
    )
    add("--h-customers", type=int, default=10_000, help="h: customers backfilled (default: 10000)")
    add(
        "--h-repeat",
        type=int,
        default=1,
        help="h: backfills to time (default: 1; each takes half a minute at 8 requests/s)",
    )
    add(
        "--h-requests-per-second",
        type=float,
        default=8.0,
        help="h: the stand-in's limit and STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND (default: 8)",
    )
    add(
        "--profiles",
        type=int,
        default=100_000,
        help="f: profiles in the table (default: %(default)s; see bench/README.md)",
    )
    add(
        "--i-profiles",
        type=int,
        default=1_000_000,
        help="i: profiles in the changelog a backfill reads (default: %(default)s)",
    )
    add(
        "--j-profiles",
        type=int,
        default=1_000_000,
        help="j: profiles the time-based triggers' scan goes through (default: %(default)s)",
    )
    add("--recovery-timeout", type=float, default=600.0, help="f: seconds to wait for ready")
    add("--keep", action="store_true", help="keep this run's topics and data directories")
    add(
        "--out",
        type=Path,
        default=RESULTS / "latest.json",
        help="JSON results (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    chosen = set(args.only.replace(",", "").replace(" ", ""))
    unknown = chosen - set(FIGURES)
    if unknown or not chosen:
        parser.error(f"--only takes letters from {FIGURES}, got {args.only!r}")
    args.figures = sorted(chosen | {NEEDS[f] for f in chosen if f in NEEDS})
    return args


@dataclass
class Figure:
    """One measured quantity: a value per repetition."""

    figure: str
    label: str
    unit: str
    values: list[float] = field(default_factory=list)
    digits: int = 0

    def summary(self) -> dict[str, Any]:
        finite = [v for v in self.values if not math.isnan(v)]
        if not finite:
            return {"runs": self.values, "min": None, "median": None, "max": None}
        return {
            "runs": self.values,
            "min": min(finite),
            "median": statistics.median(finite),
            "max": max(finite),
        }


class Report:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Figure] = {}
        self.details: dict[str, list[dict[str, Any]]] = {}
        self.notes: list[str] = []
        self.errors: dict[str, str] = {}

    def add(self, figure: str, label: str, unit: str, value: float, digits: int = 0) -> None:
        row = self.rows.setdefault((figure, label), Figure(figure, label, unit, digits=digits))
        row.values.append(value)

    def detail(self, figure: str, numbers: dict[str, Any]) -> None:
        self.details.setdefault(figure, []).append(numbers)

    def values(self, figure: str, label: str) -> list[float]:
        row = self.rows.get((figure, label))
        return row.values if row else []

    def markdown(self) -> str:
        lines = [
            "| figure | measure | min | median | max | unit |",
            "|---|---|---:|---:|---:|---|",
        ]
        for row in sorted(self.rows.values(), key=lambda r: r.figure):
            summary = row.summary()
            cells = [_fmt(summary[k], row.digits) for k in ("min", "median", "max")]
            lines.append(f"| {row.figure} | {row.label} | {' | '.join(cells)} | {row.unit} |")
        for figure, error in self.errors.items():
            lines.append(f"| {figure} | failed: {error} | | | | |")
        return "\n".join(lines)


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


async def run(args: argparse.Namespace) -> Report:
    run_id = datetime.now(UTC).strftime("%m%d%H%M") + "-" + uuid.uuid4().hex[:4]
    prefix = f"bench-{run_id}"
    run_dir = RESULTS / f"run-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    setup = figures.Setup(
        prefix=prefix,
        run_dir=run_dir,
        events_topic=f"{prefix}.events",
        events=args.events,
        partitions=args.partitions,
        budget=args.budget,
    )
    report = Report()
    report.notes.append(f"run {run_id}: logs in {run_dir.relative_to(RESULTS.parent.parent)}")
    print(f"bench: run {run_id}, figures {','.join(args.figures)}, logs in {run_dir}", flush=True)
    try:
        await _figures(args, setup, report)
    finally:
        if not args.keep:
            deleted = await kafka.delete_topics(prefix)
            for data in run_dir.glob("*-data*"):
                shutil.rmtree(data, ignore_errors=True)
            print(f"bench: deleted {len(deleted)} topics of this run", flush=True)
    return report


async def _figures(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    wanted = set(args.figures)
    if wanted & set("abce"):
        await _step("setup", report, lambda: _produce_events(args, s, report))
        if "setup" in report.errors:
            return
    steps = {
        "a": _figure_a,
        "b": _figure_b,
        "c": _figure_c,
        "d": _figure_d,
        "h": _figure_h,
        "e": _figure_e,
        "f": _figure_f,
        "i": _figure_i,
        "j": _figure_j,
    }
    if "c" in wanted:
        steps.pop("b")  # c runs b's repetitions, each right before its own
    for name, figure in steps.items():
        if name in wanted:
            await _step(name, report, functools.partial(figure, args, s, report))


async def _step(name: str, report: Report, body: Callable[[], Awaitable[None]]) -> None:
    started = time.monotonic()
    print(f"bench: {name} ...", flush=True)
    await _recorded(name, report, body())
    print(f"bench: {name} took {time.monotonic() - started:.0f} s", flush=True)


async def _recorded(name: str, report: Report, work: Awaitable[None]) -> None:
    """Await `work`; if it fails, print why and record the figure as failed."""
    try:
        await work
    except Exception as exc:
        traceback.print_exc()
        report.errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


async def _produce_events(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    await kafka.create_topic(s.events_topic, s.partitions)
    # Event times end about now, one millisecond apart: all within the campaign horizon.
    start = datetime.now(UTC) - timedelta(milliseconds=args.events) - timedelta(minutes=1)
    generator = EventGenerator(
        mix=args.mix, seed=2, clock=ticking_clock(start, timedelta(milliseconds=1))
    )
    records = list(generator.stream(args.events, args.customers))
    started = time.monotonic()
    await kafka.produce(s.events_topic, records, s.partitions)
    size = statistics.mean(len(value) for _, value in records)
    report.notes.append(
        f"{args.events:,} events ({size:.0f} bytes on average) for {args.customers:,} customers "
        f"on {s.partitions} partitions, produced in {time.monotonic() - started:.1f} s"
    )


async def _figure_a(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    for _ in range(args.repeat):
        numbers = await figures.ceiling(s)
        report.detail("a", numbers)
        report.add("a", A_RATE, "events/s", numbers["events_per_s"])


async def _figure_b(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    for rep in range(args.repeat):
        await _b_run(s, rep, report)


async def _b_run(s: figures.Setup, rep: int, report: Report) -> None:
    numbers = await figures.bare_faust(s, rep)
    report.detail("b", numbers)
    report.add("b", B_RATE, "events/s", numbers["events_per_s"])


async def _figure_c(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    # Delivery must not be the bottleneck: no rate limit at the stand-in, the worker's maximum.
    async with stand_in.running(rate_limit=0) as sandbox:
        for rep in range(args.repeat):
            if "b" in args.figures and "b" not in report.errors:
                # c/b compares the i-th runs: run them back to back, as this machine's speed
                # drifts over the minutes between b's first run and c's last.
                await _recorded("b", report, _b_run(s, rep, report))
            sandbox.state.reset(faults=False)
            app_id = f"{s.prefix}-c{rep}"
            numbers = await figures.pipeline(s, app_id, sandbox, graceful="g" in args.figures)
            report.detail("c", numbers)
            report.add("c", C_RATE, "events/s", numbers["events_per_s"])
            report.add("c", "full pipeline: worker peak RSS", "MiB", numbers["peak_rss_mib"])
            if not numbers["complete"]:
                report.notes.append(
                    f"c run {rep + 1}: budget of {args.budget:.0f} s ran out after "
                    f"{numbers['read']:,} of {args.events:,} events (rate over those)"
                )
            if rep == 0 and args.apart:
                # Once, when asked: it shows what the in-worker pusher costs; three would take
                # the bench past its ten minutes.
                sandbox.state.reset(faults=False)
                apart = await figures.pipeline(s, f"{app_id}p", sandbox, push_apart=True)
                report.detail("c", {"push_apart": True, **apart})
                report.add("c", C_APART_RATE, "events/s", apart["events_per_s"])
            if "g" in args.figures:
                cost = await figures.changelog_cost(app_id, numbers["applied"])
                report.detail("g", cost)
                report.add("g", "changelog bytes per event", "bytes", cost["bytes_per_event"])
                report.add("g", "changelog records per event", "", cost["records_per_event"], 2)
                report.add("g", "median profile size", "bytes", cost["median_profile_bytes"])
    full = report.values("c", C_RATE)
    _ratios(report, "c", "c/a", full, report.values("a", A_RATE))
    _ratios(report, "c", "c/b", full, report.values("b", B_RATE))
    _ratios(
        report,
        "c",
        "c/b, pusher apart",
        report.values("c", C_APART_RATE),
        report.values("b", B_RATE),
    )


def _ratios(
    report: Report, figure: str, name: str, tops: list[float], bottoms: list[float]
) -> None:
    """The ratios of the i-th repetitions of two figures."""
    for top, bottom in zip(tops, bottoms, strict=False):
        report.add(figure, name, "x", top / bottom, 3)


async def _figure_d(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    rps = args.d_requests_per_second
    async with stand_in.running(rate_limit=rps) as sandbox:
        steady = await figures.steady_start(s, sandbox, args.d_customers, rps)
        try:
            for _ in range(args.repeat):
                n = await figures.steady_window(steady, sandbox, args.rate, args.seconds)
                report.detail("d", n)
                report.add(
                    "d",
                    f"requests per 1,000 events (at {args.rate:,.0f}/s)",
                    "",
                    n["requests_per_k"],
                    1,
                )
                report.add("d", "events/s actually sent", "events/s", n["send_rate"])
                report.add("d", "minimum requests per 1,000 events", "", n["min_requests_per_k"], 1)
                report.add("d", "records per 1,000 events", "", n["records_per_k"])
                report.add("d", "minimum records per 1,000 events", "", n["min_records_per_k"])
                report.add(
                    "d",
                    "batch fill (records / 100 per accepted request)",
                    "%",
                    n["batch_fill_pct"],
                    1,
                )
                report.add("d", "429 answers per 1,000 events", "", n["status_429_per_k"], 1)
                for q in ("p50", "p95", "p99"):
                    report.add(
                        "d", f"latency {q}, event time → accepted", "s", n[f"latency_{q}_s"], 2
                    )
        finally:
            await steady.worker.stop()
    report.notes.append(
        f"d: {args.d_customers:,} customers enrolled first; stand-in limit and worker rate "
        f"{rps:g} requests/s; latency over custom events (contacts carry no event time)"
    )


async def _figure_h(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    rps = args.h_requests_per_second
    async with stand_in.running(rate_limit=rps) as sandbox:
        steady = await figures.steady_start(s, sandbox, args.h_customers, rps, name="h")
        try:
            for _ in range(args.h_repeat):
                n = await figures.backfill_run(steady, sandbox, rps)
                report.detail("h", n)
                report.add("h", "backfill, start to every contact accepted", "s", n["seconds"], 1)
                report.add("h", "bound: contacts / 100 / rate", "s", n["bound_s"], 1)
                report.add("h", "backfill / bound", "", n["ratio"], 2)
                report.add("h", "429 answers", "", n["status_429"])
        finally:
            await steady.worker.stop()
    report.notes.append(
        f"h: {args.h_customers:,} customers enrolled first, then `python -m stream backfill`; "
        f"stand-in limit and STREAM_OMETRIA__MAX_REQUESTS_PER_SECOND {rps:g} requests/s"
    )


async def _figure_e(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    async with stand_in.running(rate_limit=0) as sandbox:
        for rep in range(args.repeat):
            sandbox.state.reset(faults=False)
            numbers = await figures.pipeline(s, f"{s.prefix}-e{rep}", sandbox, workers=2)
            report.detail("e", numbers)
            report.add("e", E_RATE, "events/s", numbers["events_per_s"])
            if not numbers["complete"]:
                report.notes.append(
                    f"e run {rep + 1}: budget ran out after {numbers['read']:,} events"
                )
    _ratios(report, "e", "speed-up (e/c)", report.values("e", E_RATE), report.values("c", C_RATE))


async def _figure_f(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    populated = await figures.state_populate(s, args.profiles)
    report.detail("f", populated)
    report.notes.append(
        f"f: {populated['profiles']:,} profiles (median {populated['median_template_bytes']:.0f} "
        f"bytes) written to the changelog in {populated['produce_seconds']:.0f} s"
    )
    n = f"{args.profiles:,}"
    for rep in range(args.repeat):
        numbers = await figures.state_recovery(s, populated["app_id"], rep, args.recovery_timeout)
        report.detail("f", numbers)
        report.add(
            "f",
            f"recovery from the changelog alone, {n} profiles (start → ready)",
            "s",
            numbers["recover_seconds"],
            1,
        )
        report.add("f", "recovery rate", "profiles/s", args.profiles / numbers["recover_seconds"])
        report.add("f", "peak RSS while recovering", "MiB", numbers["recover_peak_rss_mib"])
        report.add("f", "on-disk state (RocksDB data dir)", "MiB", numbers["recover_disk_mib"])
        report.add(
            "f", "restart with local state (start → ready)", "s", numbers["restart_seconds"], 1
        )
        report.add("f", "peak RSS after restart", "MiB", numbers["restart_peak_rss_mib"])


async def _figure_i(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    populated = await figures.state_populate(s, args.i_profiles, name="i", json_keys=True)
    report.detail("i", populated)
    await kafka.create_topic(f"{populated['app_id']}.outbox", s.partitions)
    n = f"{args.i_profiles:,}"
    report.notes.append(
        f"i: {populated['profiles']:,} profiles (median {populated['median_template_bytes']:.0f} "
        f"bytes) over {s.partitions} partitions written in {populated['produce_seconds']:.0f} s"
    )
    for rep in range(args.repeat):
        for dry_run, what in ((True, "--dry-run (read + map)"), (False, "queuing every contact")):
            numbers = await figures.backfill_memory(s, populated["app_id"], dry_run)
            report.detail("i", {"rep": rep, "dry_run": dry_run, **numbers})
            report.add(
                "i", f"backfill {what}, {n} profiles: peak RSS", "MiB", numbers["peak_rss_mib"]
            )
            report.add("i", f"backfill {what}: duration", "s", numbers["seconds"], 1)


async def _figure_j(args: argparse.Namespace, s: figures.Setup, report: Report) -> None:
    templates = figures.profile_templates(1000)
    n = f"{args.j_profiles:,}"
    numbers = figures.scan_cost(args.j_profiles, templates)  # once: about 40 s a million
    report.detail("j", numbers)
    report.add("j", f"trigger scan over {n} profiles (CPU, in-process)", "s",
               numbers["scan_seconds"], 1)  # fmt: skip
    report.add("j", "trigger scan rate", "profiles/s", numbers["profiles_per_second"])
    report.add("j", "longest slice (a fold batch waits at most this)", "ms",
               numbers["longest_slice_ms"], 1)  # fmt: skip


def write_json(args: argparse.Namespace, report: Report, seconds: float) -> dict[str, Any]:
    doc = {
        "finished_at": datetime.now(UTC).isoformat(),
        "duration_s": round(seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "bootstrap": kafka.BOOTSTRAP,
        },
        "config": {
            "figures": args.figures,
            "events": args.events,
            "customers": args.customers,
            "partitions": args.partitions,
            "mix": args.mix,
            "repeat": args.repeat,
            "budget_s": args.budget,
            "apart": args.apart,
            "d_rate": args.rate,
            "d_seconds": args.seconds,
            "d_customers": args.d_customers,
            "d_requests_per_second": args.d_requests_per_second,
            "profiles": args.profiles,
        },
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
    return doc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
