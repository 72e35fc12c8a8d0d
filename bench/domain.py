"""The domain's per-event cost, in-process: µs per event of each step the worker's fold runs.

    .venv/bin/python -m bench.domain [--events 100000] [--customers 10000] [--repeat 3]
    .venv/bin/python -m bench.domain --checkout /tmp/old --checkout . --repeat 3

Generates figure c's events (bench.gen, seed 2, 10,000 customers, 100,000 events) and runs
them through the worker's pure steps in batches as the fold does: `admit` (parse, validate,
key and time checks) and `apply_event` per event; per batch, `contact_update` and
`Profile.to_bytes` (the changelog value) once per changed customer. No Kafka, no Faust.

With `--checkout`, each repetition runs one child per checkout (its `stream` first on
PYTHONPATH, this bench module from here), alternating, so old and new code are measured in
the same minute on a noisy machine; the ratios are per repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.gen import EventGenerator, ticking_clock

STEPS = ("admit", "apply_event", "contact_update", "to_bytes")
HERE = Path(__file__).resolve().parent.parent


def measure(events: int, customers: int, batch_size: int) -> dict[str, float]:
    """µs per event of each step, over one pass of the generated stream."""
    from stream.domain.intake import EventWindow, admit
    from stream.domain.mapping import load_mapping
    from stream.domain.profile import Profile
    from stream.domain.sync import SyncRules, apply_event, contact_update
    from stream.runtime.heap import WORKER_YOUNG_THRESHOLD, tune_collector
    from stream.settings import load_settings

    start = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    generator = EventGenerator(seed=2, clock=ticking_clock(start, timedelta(milliseconds=1)))
    records = list(generator.stream(events, customers))
    now = start + timedelta(milliseconds=events) + timedelta(seconds=1)
    settings = load_settings()
    rules = SyncRules.from_settings(settings, load_mapping(settings.mapping.preset, None))
    window = EventWindow.from_settings(settings)
    profiles: dict[str, Profile | None] = {}
    spent = dict.fromkeys(STEPS, 0)
    # As the worker collects: with CPython's default thresholds collection doubled admit's cost.
    tune_collector(WORKER_YOUNG_THRESHOLD)
    # CPU time, not wall time: the machine is shared, and another process's turn is not ours.
    clock = time.process_time_ns
    for first in range(0, len(records), batch_size):
        batch = records[first : first + batch_size]
        began = clock()
        admitted = [admit(value, key, now, window) for key, value in batch]
        spent["admit"] += clock() - began
        changed: dict[str, Profile] = {}
        began = clock()
        for offset, event in enumerate(admitted, start=first):
            outcome = apply_event(profiles.get(event.customer.id), event, rules, now, offset)
            profiles[event.customer.id] = changed[event.customer.id] = outcome.profile
        spent["apply_event"] += clock() - began
        began = clock()
        updated = [contact_update(profile, rules)[0] for profile in changed.values()]
        spent["contact_update"] += clock() - began
        began = clock()
        for profile in updated:
            profile.to_bytes()
        spent["to_bytes"] += clock() - began
        for profile in updated:
            profiles[profile.customer_id] = profile
    return {step: ns / 1000 / len(records) for step, ns in spent.items()}


def _child(args: argparse.Namespace) -> None:
    print(json.dumps(measure(args.events, args.customers, args.batch_size)))


def _run_checkout(checkout: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(checkout).resolve()), str(HERE)])}
    command = [sys.executable, "-m", "bench.domain", "--child"]
    command += ["--events", str(args.events), "--customers", str(args.customers)]
    command += ["--batch-size", str(args.batch_size)]
    # This module again, with its own arguments.
    run = subprocess.run(command, env=env, check=True, capture_output=True, text=True)  # noqa: S603
    out = run.stdout
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def _row(name: str, result: dict[str, float]) -> str:
    total = sum(result.values())
    cells = " | ".join(f"{result[step]:.1f}" for step in STEPS)
    return f"| {name} | {cells} | {total:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--checkout", action="append", default=[])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    checkouts = args.checkout or ["."]
    print(f"| run | {' | '.join(STEPS)} | total (µs per event) |")
    print("|---|" + "---|" * (len(STEPS) + 1))
    for rep in range(args.repeat):
        results = [(c, _run_checkout(c, args)) for c in checkouts]
        for checkout, result in results:
            print(_row(f"{rep + 1}: {checkout}", result), flush=True)
        if len(results) > 1:
            base = sum(results[0][1].values())
            ratios = ", ".join(f"{sum(r.values()) / base:.3f}" for _, r in results[1:])
            print(f"| {rep + 1}: total / first | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
