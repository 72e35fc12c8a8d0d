"""`worker` and `push`: check the settings, ensure the topics, set up logging and start the
long-running process."""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.ops.exit_codes import ExitCode
from stream.runtime.heap import WORKER_YOUNG_THRESHOLD, tune_collector
from stream.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from stream.runtime.replay_mark import ReplayMark


def _logging_config(settings: Settings, command: str) -> dict[str, Any]:
    from stream.ops.logging import logging_config

    email_key = settings.log_email_key
    if email_key is None and settings.log_emails == "hashed":
        print(
            f"{command}: STREAM_LOG_EMAIL_KEY is not set: emails in logs are hashed with a random "
            "key for this process, so the same email hashes differently after a restart or on "
            "another worker; set STREAM_LOG_EMAIL_KEY (or _FILE) to follow a customer across them",
            file=sys.stderr,
        )
    return logging_config(
        settings.log_level,
        fmt=settings.log_format,
        emails=settings.log_emails,
        email_key=(email_key.get_secret_value().encode() if email_key else secrets.token_bytes(32)),
    )


def push_command(_: argparse.Namespace) -> int:
    """Deliver the outbox to Ometria in this process (`push`) until stopped."""
    settings = get_settings()
    if not settings.ometria.enabled:
        raise SettingsError(
            "STREAM_OMETRIA__ENABLED=false holds the outbox: set it to true to push"
        )
    settings.ometria.require_api_key()
    from stream.ops.probes import pusher_probes
    from stream.runtime.push_service import run_alone
    from stream.runtime.topology import ensure_topics

    logging.config.dictConfig(_logging_config(settings, "push"))

    async def push() -> int:
        report = await ensure_topics(settings)
        for warning in report.over_erasure_deadline:
            print(f"push: {warning}", file=sys.stderr)
        tune_collector()
        return await run_alone(settings, settings.web_port, pusher_probes)

    return asyncio.run(push())


def worker_command(_: argparse.Namespace) -> int:
    """Ensure the topics and offsets, apply the last replay, and run the Faust worker."""
    settings = get_settings()
    if settings.ometria.enabled:
        settings.ometria.require_api_key()
    from stream.runtime.topology import ensure_topics
    from stream.runtime.worker_offsets import ensure_committed_offsets

    # Faust runs on this loop too; asyncio.run() would close it before the worker starts.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    report = loop.run_until_complete(ensure_topics(settings))
    loop.run_until_complete(ensure_committed_offsets(settings))
    if report.created:
        print(f"worker: created topics {', '.join(report.created)}", file=sys.stderr)
    if report.replay_reach:
        print(f"worker: {report.replay_reach}", file=sys.stderr)
    for warning in report.over_erasure_deadline:
        print(f"worker: {warning}", file=sys.stderr)
    replayed, generation = loop.run_until_complete(_last_replay(settings))
    if settings.topics.partitions != report.partitions:
        topics = settings.topics.model_copy(update={"partitions": report.partitions})
        settings = settings.model_copy(update={"topics": topics})

    import faust

    from stream.runtime.worker import declare_worker

    until = replayed.until if replayed is not None else {}
    app = declare_worker(settings, until, generation or 0)
    from stream.ops import web  # noqa: F401 - registers the views
    from stream.ops.replay import wipe_local_tables

    if replayed is not None and wipe_local_tables(
        Path(app.conf.tabledir), settings.data_dir, replayed
    ):
        print(f"worker: replay reset the table: removed {app.conf.tabledir}", file=sys.stderr)
    config = _logging_config(settings, "worker")
    # Its timer (stream.runtime.heap.declare, in declare_worker) collects what batches do not.
    tune_collector(WORKER_YOUNG_THRESHOLD)
    worker = faust.Worker(
        app, loop=loop, loglevel=settings.log_level.upper(), logging_config=config
    )
    # At level warning and above Faust's terminal spinner sets the root logger to DEBUG, so
    # every library builds a debug record per message sent; a service has no terminal anyway.
    worker.spinner = None
    worker.execute_from_commandline()
    return ExitCode.OK  # pragma: no cover - execute_from_commandline exits


async def _last_replay(settings: Settings) -> tuple[ReplayMark | None, int | None]:
    """The last replay's mark for the worker to start from, and its contact version generation
    (None: unknown)."""
    from stream.runtime import control
    from stream.runtime.replay_mark import REPLAY, generation_of, last_replay

    records = await control.read(settings)
    try:
        replayed = await last_replay(settings, records)
    except control.UnreadableControlRecord as exc:
        generation = generation_of(records.get(REPLAY))
        # Stopping every worker over it would halt the stream for a record that only holds
        # back campaigns the horizon mostly holds back too; a new `replay` writes a good one.
        known = (
            f"contacts keep its generation {generation}"
            if generation is not None
            else "its contact version generation is unknown (0 is used: contacts may be "
            "dropped as stale)"
        )
        print(
            f"worker: {exc}; starting without it: campaign events of replayed records younger "
            f"than the horizon may fire again, no table reset is applied, and {known}",
            file=sys.stderr,
        )
        return None, generation
    return replayed, replayed.generation if replayed is not None else 0
