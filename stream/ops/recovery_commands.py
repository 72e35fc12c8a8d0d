"""`backfill`, `replay` and `redrive`: send again what the stream already handled (contacts,
events to fold again, dead letters) and report what was sent."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stream.ops.exit_codes import ExitCode
from stream.settings import Settings, get_settings

if TYPE_CHECKING:
    from stream.domain.contact_mapping import ContactMapping
    from stream.ops.backfill import BackfillReport
    from stream.runtime.replay_mark import ReplayMark


def backfill_command(args: argparse.Namespace) -> int:
    """Queue every known (or each given) customer's contact, held by the cooldown."""
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


def replay_command(args: argparse.Namespace) -> int:
    """Rewind the workers' group on the events topic, optionally following their progress."""
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


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def redrive_command(args: argparse.Namespace) -> int:
    """Re-publish the dead letters that match the filters."""
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
