"""The commands for trying the stream without Ometria: the local stand-in (`sandbox`), demo
events (`send-sample`) and the schema files (`schemas`)."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from stream.ops.exit_codes import ExitCode
from stream.settings import Settings, get_settings


def sandbox_command(argv: list[str]) -> int:
    """Run the local Ometria stand-in with its own arguments."""
    from stream.ops.sandbox import main as sandbox_main

    return sandbox_main(argv)


async def _produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    from aiokafka import AIOKafkaProducer

    from stream.runtime.kafka_auth import client_options
    from stream.runtime.topology import ensure_topics

    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                settings.topics.events,
                key=str(event["customer"]["id"]).encode(),
                value=orjson.dumps(event),
            )
    finally:
        await producer.stop()


def send_sample_command(args: argparse.Namespace) -> int:
    """Send the demo events; with --show-sandbox, wait for and print what the stand-in got."""
    from stream.ops.samples import SAMPLE_CUSTOMERS, sample_events

    settings = get_settings()
    run = uuid.uuid4().hex[:8]
    events = sample_events(run, datetime.now(UTC))
    asyncio.run(_produce(settings, events))
    print(f"send-sample: sent {len(events)} events to {settings.topics.events}")
    if args.show_sandbox:
        expected = [c["id"] for c in SAMPLE_CUSTOMERS if "email" in c]
        return _show_sandbox(args.show_sandbox, expected, f"sample-{run}-", args.timeout)
    return ExitCode.OK


def of_this_run(events: list[dict[str, Any]], run_prefix: str) -> list[dict[str, Any]]:
    """The custom events fired by this run's sample events: their ids read
    `{customer}:{event_id}:{rule}`, and this run's event ids start with `run_prefix`."""
    return [
        event
        for event in events
        if str(event["id"]).startswith(f"{event.get('identity_account_id')}:{run_prefix}")
    ]


def _show_sandbox(url: str, customer_ids: list[str], run_prefix: str, timeout: float) -> int:
    """Wait until the stand-in holds this run's records, then print what it received."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    deadline = time.monotonic() + timeout
    contacts: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            contacts = http.get("/_sandbox/contacts").json()["contacts"]
            events = of_this_run(http.get("/_sandbox/events").json()["events"], run_prefix)
            # Every sample customer with an email fires at least one campaign event per run.
            if {e.get("identity_account_id") for e in events} >= set(customer_ids):
                break
            time.sleep(0.5)  # polling a remote state with a deadline, not synchronisation

    def show(title: str, columns: tuple[str, str], records: list[dict[str, Any]]) -> None:
        table = Table(title=title)
        for column in (*columns, "properties"):
            table.add_column(column)
        for record in records:
            props = ", ".join(f"{k}={v}" for k, v in sorted(record.get("properties", {}).items()))
            table.add_row(*(str(record.get(c, "")) for c in columns), props)
        console.print(table)

    show(f"Contacts received by the Ometria stand-in ({url})", ("id", "email"), contacts)
    show("Custom events received", ("event_type", "identity_account_id"), events)
    missing = set(customer_ids) - {e.get("identity_account_id") for e in events}
    if missing:
        console.print(f"[red]still missing after {timeout:.0f}s: {', '.join(sorted(missing))}")
        return ExitCode.REFUSED
    return ExitCode.OK


def schemas_command(args: argparse.Namespace) -> int:
    """Write the event JSON Schemas and Avro schemas into --out."""
    from stream.ops.schemas import write

    for path in write(Path(args.out)):
        print(f"schemas: wrote {path}")
    return ExitCode.OK
