"""The `--json` answers of `status` and the dry runs: one JSON object each, for scripts.

Counts, states and times only, never a customer id: these documents are made to be stored and
passed on, where personal data must not go. The terminal output keeps the ids an operator acts
on (the erasures to do in Ometria, the customers without a profile).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from stream.ops.backfill import BackfillReport
from stream.ops.forget import Erasures
from stream.ops.redrive import Report
from stream.runtime.control import PauseState, UnreadableControlRecord
from stream.runtime.erasures import Pending
from stream.runtime.groups import Backlog, GroupState
from stream.runtime.replay_mark import ReplayMark

Document = dict[str, Any]


def dumps(document: Document) -> str:
    """The document as one line of JSON, keys sorted."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def status_document(
    *,
    app_id: str,
    ometria_enabled: bool,
    pause: PauseState,
    backlog: Backlog,
    groups: Sequence[GroupState],
    last_backfill: datetime | UnreadableControlRecord | None,
    last_replay: ReplayMark | UnreadableControlRecord | None,
    replay_folded: int | None,
    unscoped: Sequence[str],
    pending: Sequence[Pending],
) -> Document:
    """What `status` prints, as data."""
    backfill: Document | None
    if isinstance(last_backfill, UnreadableControlRecord):
        backfill = {"unreadable": str(last_backfill)}
    else:
        backfill = None if last_backfill is None else {"at": _time(last_backfill)}
    replay: Document | None
    if isinstance(last_replay, UnreadableControlRecord):
        replay = {"unreadable": str(last_replay)}
    elif last_replay is None:
        replay = None
    else:
        replay = {
            "at": _time(last_replay.at),
            "from": last_replay.source,
            "table_reset": last_replay.reset is not None,
            "records": last_replay.records(),
            "folded": replay_folded,
        }
    return {
        "command": "status",
        "app_id": app_id,
        "ometria_enabled": ometria_enabled,
        "paused": pause.paused,
        "paused_since": _time(pause.since),
        "outbox_backlog": {
            "total": backlog.total,
            "per_partition": {str(p): n for p, n in sorted(backlog.per_partition.items())},
        },
        "groups": [
            {"group": group.group, "state": group.state, "members": len(group.members)}
            for group in groups
        ],
        "last_backfill": backfill,
        "last_replay": replay,
        "unscoped_records": list(unscoped),
        "erasures_pending_in_ometria": len(pending),
    }


def backfill_document(report: BackfillReport, *, source: str) -> Document:
    """What `backfill --dry-run` would queue."""
    return {
        "command": "backfill",
        "dry_run": True,
        "source": source,
        "profiles": report.profiles,
        "contacts": report.contacts,
        "without_email": report.without_email,
        "changed_meanwhile": report.changed_meanwhile,
        "customers_without_profile": len(report.missing),
    }


def replay_document(mark: ReplayMark, *, group: str, topic: str, reset_state: bool) -> Document:
    """What `replay --dry-run` would rewind."""
    return {
        "command": "replay",
        "dry_run": True,
        "group": group,
        "topic": topic,
        "from": mark.source,
        "reset_state": reset_state,
        "records": mark.records(),
        "partitions": {
            str(p): {"start": mark.start[p], "until": mark.until[p]} for p in sorted(mark.until)
        },
    }


def redrive_document(report: Report) -> Document:
    """What `redrive --dry-run` would publish."""
    return {
        "command": "redrive",
        "dry_run": True,
        "dead_letter_topic": report.dead_letter_topic,
        "scanned": report.scanned,
        "matched": report.matched,
        "publishable": report.matched - report.still_invalid - report.cut - report.erased,
        "still_invalid": report.still_invalid,
        "cut": report.cut,
        "already_published": report.already,
        "erased": report.erased,
    }


def forget_document(erasures: Erasures) -> Document:
    """What `forget --dry-run` would publish."""
    return {
        "command": "forget",
        "dry_run": True,
        "topic": erasures.topic,
        "customers": erasures.customers,
        "partitions": list(erasures.partitions),
        "records": erasures.records,
    }
