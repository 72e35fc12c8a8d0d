"""`pause`, `resume` and `status`: switch and report the deployment's operating state (control
topic, consumer groups, outbox backlog, erasures pending in Ometria)."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stream.domain.durations import duration_text
from stream.ops.exit_codes import ExitCode
from stream.settings import Settings, get_settings

if TYPE_CHECKING:
    from stream.runtime.control import PauseState, UnreadableControlRecord
    from stream.runtime.erasures import Pending
    from stream.runtime.groups import Backlog, GroupState
    from stream.runtime.replay_mark import ReplayMark


def _since(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "an unknown time"
    return f"{moment.isoformat(timespec='seconds')} ({duration_text(now - moment)} ago)"


async def _outbox_backlog(settings: Settings) -> Any:
    from stream.runtime.groups import outbox_backlog

    return await outbox_backlog(settings)


def pause_command(args: argparse.Namespace) -> int:
    """Pause or resume pushing to Ometria (the command's name says which)."""
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


def status_command(args: argparse.Namespace) -> int:
    """Print the deployment's operating state, or one JSON document with --json."""
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
