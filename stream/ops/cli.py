"""`python -m stream <command>`: worker, push, sandbox, send-sample, redrive, backfill, forget,
schemas. Exit codes: stream.ops.exit_codes (docs/operating.md#exit-codes)."""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import secrets
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
import orjson
from aiokafka.errors import KafkaError

import stream
from stream.domain.durations import duration_text
from stream.errors import MappingError
from stream.ops.exit_codes import ExitCode
from stream.runtime.heap import tune_collector
from stream.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from stream.domain.contact_mapping import ContactMapping
    from stream.ops.backfill import BackfillReport
    from stream.runtime.control import PauseState, UnreadableControlRecord
    from stream.runtime.erasures import Pending
    from stream.runtime.groups import Backlog, GroupState
    from stream.runtime.replay_mark import ReplayMark


def prepare_data_dir(path: Path) -> Path:
    """Create the data directory with its parents and check it takes files.

    Raises:
        SettingsError: the directory cannot be created or written, naming the setting to change.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"STREAM_DATA_DIR={path}: cannot create or write the data directory ({reason}); "
            "set STREAM_DATA_DIR to a writable directory (in Kubernetes, the volume that holds "
            "the table files)"
        ) from None
    return path


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


def _push(_: argparse.Namespace) -> int:
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


def _worker(_: argparse.Namespace) -> int:
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
    tune_collector()
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


def _sandbox(argv: list[str]) -> int:
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


def _send_sample(args: argparse.Namespace) -> int:
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


def _schemas(args: argparse.Namespace) -> int:
    from stream.ops.schemas import write

    for path in write(Path(args.out)):
        print(f"schemas: wrote {path}")
    return ExitCode.OK


def _backfill(args: argparse.Namespace) -> int:
    from stream.domain.mapping import load_mapping
    from stream.runtime import control

    settings = get_settings()
    mapping = load_mapping(settings.mapping.preset, settings.mapping.file).contact
    customers = frozenset(args.customer) if args.customer else None
    # Only a full run counts for the cooldown and is held by it: one customer's re-sync is not
    # the hourly "Sync Customers".
    full = customers is None
    now = datetime.now(UTC)
    wait, previous = asyncio.run(
        _backfill_cooldown(settings, full=full, dry_run=args.dry_run, now=now)
    )
    if wait is not None and not (args.force or args.dry_run):
        print(f"backfill: refused: {wait}; --force runs it anyway", file=sys.stderr)
        return ExitCode.REFUSED
    if wait is not None and args.force and not args.dry_run:
        asyncio.run(control.write(settings, control.BACKFILL, control.backfill_record(now, None)))
    report = _run_backfill(settings, mapping, args, customers, previous)
    if report is None:
        return ExitCode.REFUSED
    if full and not args.dry_run:
        record = control.backfill_record(now, report.contacts)
        asyncio.run(control.write(settings, control.BACKFILL, record))
    return _show_backfill(settings, report, args)


async def _backfill_cooldown(
    settings: Settings, *, full: bool, dry_run: bool, now: datetime
) -> tuple[str | None, bytes | None]:
    """Why a full backfill must wait (None: it may run now), and the last run's control record
    (put back should this run fail)."""
    from stream.runtime import control
    from stream.runtime.backfill_cooldown import cooldown_refusal
    from stream.runtime.topology import ensure_topics

    await ensure_topics(settings)
    if not full:
        return None, None
    latest = await control.read(settings)
    previous = latest.get(control.BACKFILL)
    refusal = cooldown_refusal(previous, now, settings.backfill_cooldown)
    if refusal is not None:
        return refusal, previous
    if not dry_run:
        # Recorded at the start: a second run started meanwhile is refused too.
        await control.write(settings, control.BACKFILL, control.backfill_record(now, None))
    return None, previous


def _run_backfill(
    settings: Settings,
    mapping: ContactMapping,
    args: argparse.Namespace,
    customers: frozenset[str] | None,
    previous: bytes | None,
) -> BackfillReport | None:
    """Queue the contacts, showing progress; None when refused (the reason printed)."""
    from stream.ops.backfill import backfill, changelog_topic
    from stream.ops.progress import ProgressView
    from stream.runtime import control

    # With --json, stdout carries the one document only.
    progress_out = sys.stderr if args.json else sys.stdout
    label = f"backfill {changelog_topic(settings)}"
    with ProgressView(label, unit="records", out=progress_out) as view:

        def advance(done: int, total: int, queued: int) -> None:
            verb = "to queue (dry run)" if args.dry_run else "queued"
            view.update(done, total, f"{queued:,} contacts {verb}")

        try:
            return asyncio.run(
                backfill(
                    settings, mapping, dry_run=args.dry_run, customers=customers, progress=advance
                )
            )
        except BaseException as exc:
            if customers is None and not args.dry_run:
                # A failed run does not hold the next one (the Job's retry) back.
                asyncio.run(control.write(settings, control.BACKFILL, previous))
            if isinstance(exc, control.UnreadableControlRecord):
                print(f"backfill: refused: {exc}", file=sys.stderr)
                return None
            raise


def _show_backfill(settings: Settings, report: BackfillReport, args: argparse.Namespace) -> int:
    from stream.ops.backfill import changelog_topic

    if args.json:
        from stream.ops.reports import backfill_document, dumps

        print(dumps(backfill_document(report, source=changelog_topic(settings))))
    else:
        verb = "would queue" if args.dry_run else f"queued on {settings.topics.outbox}"
        print(
            f"backfill: {report.profiles} profiles, {verb} {report.contacts} contacts "
            f"({report.without_email} without an email)"
        )
    if report.changed_meanwhile and not args.json:
        print(
            f"backfill: {report.changed_meanwhile} profiles changed while it read; the workers "
            "queued their newer contacts"
        )
    if report.missing:
        print(f"backfill: no stored profile for {', '.join(report.missing)}", file=sys.stderr)
        return ExitCode.REFUSED
    return ExitCode.OK


def _replay(args: argparse.Namespace) -> int:
    from stream.ops.replay import ReplayRefused, parse_from, replay

    settings = get_settings()
    try:
        since = parse_from(args.start)
    except ValueError:
        print(
            f"replay: --from {args.start!r} is neither earliest nor an ISO 8601 time",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        mark = asyncio.run(
            replay(
                settings,
                since,
                reset_state=args.reset_state,
                dry_run=args.dry_run,
                now=datetime.now(UTC),
            )
        )
    except ReplayRefused as exc:
        print(f"replay: refused: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    if args.json:
        from stream.ops.reports import dumps, replay_document

        document = replay_document(
            mark,
            group=settings.app_id,
            topic=settings.topics.events,
            reset_state=args.reset_state,
        )
        print(dumps(document))
        return ExitCode.OK
    _show_replay(settings, mark, dry_run=args.dry_run)
    if args.follow and not args.dry_run:
        _follow_replay(settings, mark)
    return ExitCode.OK


def _show_replay(settings: Settings, mark: ReplayMark, *, dry_run: bool) -> None:
    verb = "would rewind" if dry_run else "rewound"
    print(
        f"replay: {verb} group {settings.app_id} on {settings.topics.events} to {mark.source}: "
        f"{mark.records()} records to fold again "
        f"({', '.join(f'{p}: {mark.start[p]}..{mark.until[p]}' for p in sorted(mark.until))})"
    )
    if dry_run:
        return
    if mark.reset:
        print(
            "replay: table state discarded (changelog deleted; each worker removes its local "
            "table files when it starts); the rebuilt contacts are versioned in generation "
            f"{mark.generation}, newer than any delivered before"
        )
    print(
        "replay: campaign events are not fired again for these records; contacts are re-sent "
        "(each customer's newest state last). Start the workers now."
    )


def _follow_replay(settings: Settings, mark: ReplayMark) -> None:
    """Show the workers' progress through the replayed records until they are all folded."""
    from stream.ops.progress import ProgressView
    from stream.ops.replay import replay_progress

    total = mark.records()
    with ProgressView("replay", unit="records", every=10.0) as view:
        done = 0
        while done < total:
            done = asyncio.run(replay_progress(settings, mark))
            view.update(done, total, "folded again (committed by the workers)")
            time.sleep(1.0)  # polling the group's commits, which the workers make


def _since(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "an unknown time"
    return f"{moment.isoformat(timespec='seconds')} ({duration_text(now - moment)} ago)"


async def _outbox_backlog(settings: Settings) -> Any:
    from stream.runtime.groups import outbox_backlog

    return await outbox_backlog(settings)


def _set_pause(args: argparse.Namespace) -> int:
    from stream.runtime import control
    from stream.runtime.topology import ensure_topics

    settings = get_settings()
    pause = args.command == "pause"
    now = datetime.now(UTC)

    async def switch() -> tuple[Any, Any]:
        await ensure_topics(settings)
        latest = await control.read(settings)
        before = control.PauseState.from_bytes(latest.get(control.PAUSE))
        if before.paused != pause:
            await control.write(settings, control.PAUSE, control.PauseState(pause, now).to_bytes())
        elif latest.unscoped(control.PAUSE):
            # Made this deployment's own, so that an older version's write no longer moves it.
            state = control.PauseState(pause, before.since)
            await control.write(settings, control.PAUSE, state.to_bytes())
        return before, await _outbox_backlog(settings)

    before, waiting = asyncio.run(switch())
    if before.paused == pause:
        state = "paused" if pause else "not paused"
        print(f"{args.command}: already {state} since {_since(before.since, now)}; nothing changed")
    elif pause:
        print(
            f"{args.command}: pushing to Ometria paused at {now.isoformat(timespec='seconds')}; "
            f"every pusher holds within seconds and the outbox keeps the backlog "
            f"({waiting.total} records now); `python -m stream resume` drains it"
        )
    else:
        print(
            f"{args.command}: pushing to Ometria resumed (paused since "
            f"{_since(before.since, now)}); the pushers drain {waiting.total} records, coalesced"
        )
    return ExitCode.OK


@dataclass(frozen=True, slots=True)
class _StatusFacts:
    """What `status` reports, read from the control topic, the groups and the outbox."""

    pause: PauseState
    # A malformed record is reported in its line; the rest of the status still shows.
    last_backfill: datetime | UnreadableControlRecord | None
    mark: ReplayMark | UnreadableControlRecord | None
    folded: int | None
    backlog: Backlog
    groups: list[GroupState]
    unscoped: list[str]
    pending: list[Pending]


def _status(args: argparse.Namespace) -> int:
    settings = get_settings()
    facts = asyncio.run(_gather_status(settings))
    if args.json:
        from stream.ops.reports import dumps, status_document

        document = status_document(
            app_id=settings.app_id,
            ometria_enabled=settings.ometria.enabled,
            pause=facts.pause,
            backlog=facts.backlog,
            groups=facts.groups,
            last_backfill=facts.last_backfill,
            last_replay=facts.mark,
            replay_folded=facts.folded,
            unscoped=facts.unscoped,
            pending=facts.pending,
        )
        print(dumps(document))
        return ExitCode.OK
    _show_status(settings, facts, datetime.now(UTC))
    return ExitCode.OK


async def _gather_status(settings: Settings) -> _StatusFacts:
    from stream.ops.replay import replay_progress
    from stream.runtime import control
    from stream.runtime.erasures import pending_in_ometria
    from stream.runtime.groups import describe_group
    from stream.runtime.replay_mark import REPLAY, ReplayMark, last_replay

    latest = await control.read(settings)
    unscoped = [n.decode() for n in (control.PAUSE, control.BACKFILL) if latest.unscoped(n)]
    pause = control.PauseState.from_bytes(latest.get(control.PAUSE))
    last_backfill: datetime | control.UnreadableControlRecord | None
    mark: ReplayMark | control.UnreadableControlRecord | None
    try:
        last_backfill = control.backfill_time(latest.get(control.BACKFILL))
    except control.UnreadableControlRecord as exc:
        last_backfill = exc
    try:
        mark = await last_replay(settings, latest)
    except control.UnreadableControlRecord as exc:
        mark = exc
    if mark is not None and latest.unscoped(REPLAY):
        unscoped.append(REPLAY.decode())
    groups = [await describe_group(settings, g) for g in (settings.app_id, settings.pusher_group)]
    folded = await replay_progress(settings, mark) if isinstance(mark, ReplayMark) else None
    backlog = await _outbox_backlog(settings)
    pending = await pending_in_ometria(settings)
    return _StatusFacts(pause, last_backfill, mark, folded, backlog, groups, unscoped, pending)


def _show_status(settings: Settings, facts: _StatusFacts, now: datetime) -> None:
    from stream.runtime.control import UnreadableControlRecord

    if facts.pause.paused:
        print(f"status: paused since {_since(facts.pause.since, now)}")
    else:
        print("status: pushing (not paused)")
    if not settings.ometria.enabled:
        print("status: STREAM_OMETRIA__ENABLED=false here: workers started so push nothing")
    parts = ", ".join(f"{p}: {n}" for p, n in sorted(facts.backlog.per_partition.items()))
    print(
        f"status: outbox backlog {facts.backlog.total} records ({parts or 'no outbox topic yet'})"
    )
    for group in facts.groups:
        print(f"status: group {group.group} {group.state}, {len(group.members)} members")
    if isinstance(facts.last_backfill, UnreadableControlRecord):
        print(
            f"status: last backfill unknown: {facts.last_backfill}; a full backfill is refused "
            "until one runs with --force"
        )
    elif facts.last_backfill is not None:
        print(f"status: last backfill {_since(facts.last_backfill, now)}")
    mark = facts.mark
    if isinstance(mark, UnreadableControlRecord):
        print(f"status: last replay unknown: {mark}; workers start without it")
    elif mark is not None:
        reset = ", table reset" if mark.reset else ""
        print(
            f"status: last replay {_since(mark.at, now)} from {mark.source}{reset}: "
            f"{facts.folded:,} of {mark.records():,} records folded again"
        )
    if facts.unscoped:
        print(
            f"status: {', '.join(facts.unscoped)} read from records without an app id (written "
            f"before records named the deployment), which every deployment on "
            f"{settings.topics.control} without its own obeys; `pause`, `resume` and a full "
            f"`backfill` or `replay` write {settings.app_id}'s own"
        )
    _show_pending_in_ometria(facts.pending)


def _show_pending_in_ometria(pending: list[Pending]) -> None:
    """The erasures still to do in Ometria: the operator needs each id to erase it there (on
    their own terminal; never logged)."""
    if not pending:
        print("status: no erasure waits for confirmation in Ometria")
        return
    print(
        f"status: {len(pending)} erasures not yet confirmed in Ometria: erase each contact "
        "there, then `python -m stream forget --confirm-ometria --customer ID`"
    )
    for erasure in pending:
        print(
            f"status:   {erasure.erased[:12]}  erased {erasure.erased_at.isoformat()}  "
            f"customer {erasure.customer_id}"
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _redrive(args: argparse.Namespace) -> int:
    from stream.ops.redrive import Filters, Report, redrive
    from stream.runtime.topology import ensure_topics

    settings = get_settings()
    filters = Filters(
        error_class=args.error_class,
        reason_contains=args.reason,
        key=args.key,
        since=_aware(datetime.fromisoformat(args.since)) if args.since else None,
        limit=args.limit,
    )

    async def run() -> Report:
        # The redrive topic of a deployment whose workers predate it.
        await ensure_topics(settings)
        return await redrive(settings, args.which, filters, dry_run=args.dry_run, again=args.again)

    report = asyncio.run(run())
    if args.json:
        from stream.ops.reports import dumps, redrive_document

        print(dumps(redrive_document(report)))
        return ExitCode.OK
    verb = "would publish" if args.dry_run else "published"
    publishable = report.matched - report.still_invalid - report.cut - report.erased
    print(
        f"redrive: {report.scanned} dead letters in {report.dead_letter_topic}, "
        f"{report.matched} matched, {verb} {publishable if args.dry_run else report.published}, "
        f"kept {report.still_invalid} still invalid and {report.cut} cut to fit; "
        f"skipped {report.already} published by an earlier run (--again publishes them again) "
        f"and {report.erased} of erased customers (never published)"
    )
    return ExitCode.OK


def _forget(args: argparse.Namespace) -> int:
    from stream.ops.forget import ForgetRefused, confirm, forget, read_ids

    settings = get_settings()
    customer_ids = list(args.customer or [])
    if args.file:
        try:
            customer_ids += read_ids(Path(args.file).read_text().splitlines())
        except OSError as exc:
            print(f"forget: cannot read --file {args.file}: {exc.strerror}", file=sys.stderr)
            return ExitCode.USAGE
    if args.confirm_ometria:
        if args.dry_run:
            print("forget: --dry-run does not apply to --confirm-ometria", file=sys.stderr)
            return ExitCode.USAGE
        done = asyncio.run(confirm(settings, customer_ids))
        print(
            f"forget: confirmed {done.confirmed} erasures done in Ometria; "
            f"{done.not_pending} given ids had none pending (not erased by a worker yet, or "
            "confirmed already: see `status`)"
        )
        return ExitCode.OK
    try:
        erasures = asyncio.run(
            forget(settings, customer_ids, dry_run=args.dry_run, now=datetime.now(UTC))
        )
    except ForgetRefused as exc:
        print(f"forget: refused: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    if args.json:
        from stream.ops.reports import dumps, forget_document

        print(dumps(forget_document(erasures)))
        return ExitCode.OK
    verb = "would publish" if args.dry_run else "published"
    print(
        f"forget: {verb} {erasures.records} customer.erased records ({erasures.customers} "
        f"customers x {len(erasures.partitions)} partitions) to {erasures.topic} partitions "
        f"{', '.join(map(str, erasures.partitions))}"
    )
    if not args.dry_run:
        print(
            "forget: the workers erase each profile as they fold these; `status` then lists "
            "the erasures to do in Ometria"
        )
    return ExitCode.OK


def _json_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print one JSON object instead (counts, no customer ids)",
    )


# The subcommands of `python -m stream`, as argparse types them.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stream",
        description="Loyalty events from Kafka to Ometria. Exit codes: 0 done, 1 refused (the "
        "message says why), 2 wrong arguments or settings, 3 Kafka unreachable or refusing, "
        '70 a worker or pusher stopped before committing (docs/operating.md "Exit codes").',
    )
    parser.add_argument(
        "--version", action="version", version=f"python -m stream {stream.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run the stream processor").set_defaults(run=_worker)
    commands.add_parser(
        "push",
        help="deliver the outbox to Ometria only (with STREAM_OMETRIA__PUSH_IN_WORKER=false)",
    ).set_defaults(run=_push)
    sandbox = commands.add_parser("sandbox", help="run the local Ometria stand-in", add_help=False)
    sandbox.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox.set_defaults(run=_sandbox)
    sample = commands.add_parser("send-sample", help="send demo loyalty events")
    sample.add_argument(
        "--show-sandbox", metavar="URL", help="then wait for and print what the stand-in got"
    )
    sample.add_argument("--timeout", type=float, default=60.0)
    sample.set_defaults(run=_send_sample)
    _add_redrive(commands)
    _add_backfill(commands)
    for name, doc in (
        ("pause", "pause pushing to Ometria on every worker (state keeps folding)"),
        ("resume", "resume pushing to Ometria; the outbox backlog drains coalesced"),
    ):
        commands.add_parser(name, help=doc).set_defaults(run=_set_pause)
    status = commands.add_parser(
        "status",
        help="paused or not since when, outbox backlog, groups, last backfill, erasures to do "
        "in Ometria",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead (counts, no customer ids)",
    )
    status.set_defaults(run=_status)
    _add_forget(commands)
    _add_replay(commands)
    schemas = commands.add_parser(
        "schemas", help="regenerate the event JSON Schemas and Avro schemas"
    )
    schemas.add_argument("--out", default="schemas", help="directory (default: schemas)")
    schemas.set_defaults(run=_schemas)
    return parser


def _add_redrive(commands: Commands) -> None:
    redrive = commands.add_parser(
        "redrive", help="re-publish dead letters after a fix (see --help for filters)"
    )
    redrive.add_argument(
        "which", choices=["events", "outbox"], help="loyalty.events.dlq or ometria.outbox.dlq"
    )
    redrive.add_argument("--error-class", help="only letters of this error class")
    redrive.add_argument("--reason", help="only letters whose reason contains this text")
    redrive.add_argument("--key", help="only letters with this record key (customer id)")
    redrive.add_argument("--since", help="only letters that failed at or after this ISO time")
    redrive.add_argument("--limit", type=int, help="at most this many letters")
    redrive.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    _json_flag(redrive)
    redrive.add_argument(
        "--again",
        action="store_true",
        help="publish letters an earlier run published too (points may then count twice)",
    )
    redrive.set_defaults(run=_redrive)


def _add_backfill(commands: Commands) -> None:
    backfill = commands.add_parser(
        "backfill", help="queue every known customer's contact for Ometria (Sync Customers)"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count, queue nothing")
    _json_flag(backfill)
    backfill.add_argument(
        "--force", action="store_true", help="run even within the cooldown of the last backfill"
    )
    backfill.add_argument(
        "--customer",
        action="append",
        metavar="ID",
        help="only this customer (repeatable); not held by the cooldown",
    )
    backfill.set_defaults(run=_backfill)


def _add_forget(commands: Commands) -> None:
    forget = commands.add_parser(
        "forget",
        help="erase customers (GDPR): publish customer.erased to every events partition",
    )
    forget.add_argument(
        "--customer", action="append", metavar="ID", help="a customer id (repeatable)"
    )
    forget.add_argument(
        "--file", metavar="PATH", help="customer ids, one a line (# comments, blank lines)"
    )
    forget.add_argument("--dry-run", action="store_true", help="count, publish nothing")
    _json_flag(forget)
    forget.add_argument(
        "--confirm-ometria",
        action="store_true",
        help="instead: record that these customers are erased in Ometria too",
    )
    forget.set_defaults(run=_forget)


def _add_replay(commands: Commands) -> None:
    replay = commands.add_parser(
        "replay",
        help="rewind the workers to a point of the events topic (workers stopped), optionally "
        "rebuilding the table",
    )
    replay.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="earliest|TIME",
        help="earliest, or an ISO 8601 time (UTC unless it says otherwise)",
    )
    replay.add_argument(
        "--reset-state",
        action="store_true",
        help="discard the profile table so it is rebuilt from the events (with earliest)",
    )
    replay.add_argument("--dry-run", action="store_true", help="say what it would do")
    _json_flag(replay)
    replay.add_argument(
        "--follow", action="store_true", help="then show the workers' progress until done"
    )
    replay.set_defaults(run=_replay)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:
        return _sandbox(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "json", False) and not getattr(args, "dry_run", True):
        print(
            f"error: {args.command} --json needs --dry-run: only a dry run answers with one "
            "document (a real run reports as it goes)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        if args.command != "schemas":
            prepare_data_dir(get_settings().data_dir)
        result: int = args.run(args)
    except (SettingsError, MappingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KafkaError as exc:
        # e.g. a wrong SASL password or an unreachable broker, before Faust starts.
        cause = f" (caused by {exc.__cause__!r})" if exc.__cause__ else ""
        print(
            f"error: cannot use Kafka at {get_settings().kafka.bootstrap_servers}: "
            f"{exc!r}{cause}; check STREAM_KAFKA__* settings",
            file=sys.stderr,
        )
        return ExitCode.KAFKA
    return result
