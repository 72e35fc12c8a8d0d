"""`python -m stream`'s surface for scripts: --version, --json, and documented exit codes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
import pytest

import stream
from stream.ops.backfill import BackfillReport
from stream.ops.cli import main
from stream.ops.exit_codes import ExitCode
from stream.ops.forget import Erasures
from stream.ops.redrive import Report
from stream.ops.reports import (
    backfill_document,
    forget_document,
    redrive_document,
    replay_document,
    status_document,
)
from stream.runtime.control import PauseState, UnreadableControlRecord
from stream.runtime.erasures import Pending
from stream.runtime.failstop import EXIT_STOPPED_BEFORE_COMMIT
from stream.runtime.groups import Backlog, GroupState
from stream.runtime.replay_mark import ReplayMark
from tests.support import paths

OPERATING = paths.DOCS / "operating.md"
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == ExitCode.OK
    assert capsys.readouterr().out.strip() == f"python -m stream {stream.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["backfill", "--json"],
        ["replay", "--from", "earliest", "--json"],
        ["redrive", "events", "--json"],
        ["forget", "--customer", "c1", "--json"],
    ],
    ids=lambda argv: argv[0],
)
def test_json_without_dry_run_is_a_usage_error(argv, capsys):
    # Only a dry run's answer is one document: a real run reports progress as it goes.
    assert main(argv) == ExitCode.USAGE
    assert "--json needs --dry-run" in capsys.readouterr().err


def test_status_accepts_json():
    from stream.ops.cli import build_parser

    assert build_parser().parse_args(["status", "--json"]).json is True
    assert build_parser().parse_args(["status"]).json is False


def test_exit_codes_are_the_operators_guide_table():
    text = OPERATING.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n#", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", section, re.MULTILINE)}
    assert documented == {int(code) for code in ExitCode}
    assert ExitCode.STOPPED_BEFORE_COMMIT == EXIT_STOPPED_BEFORE_COMMIT


def test_status_document_reports_state_and_counts_without_customer_ids():
    document = status_document(
        app_id="loyalty-stream",
        ometria_enabled=True,
        pause=PauseState(paused=True, since=AT),
        backlog=Backlog("ometria.outbox", {0: 3, 1: 0}),
        groups=[
            GroupState("loyalty-stream", "Stable", ["w-0@10.0.0.1", "w-1@10.0.0.2"]),
            GroupState("loyalty-stream-pusher", "Empty", []),
        ],
        last_backfill=AT,
        last_replay=UnreadableControlRecord("control record replay is not JSON"),
        replay_folded=None,
        unscoped=["pause"],
        pending=[Pending("ab12cd34ef56aa", "customer-secret-42", AT)],
    )
    text = orjson.dumps(document).decode()
    assert "customer-secret-42" not in text
    assert document == {
        "command": "status",
        "app_id": "loyalty-stream",
        "ometria_enabled": True,
        "paused": True,
        "paused_since": "2026-12-01T09:30:00+00:00",
        "outbox_backlog": {"total": 3, "per_partition": {"0": 3, "1": 0}},
        "groups": [
            {"group": "loyalty-stream", "state": "Stable", "members": 2},
            {"group": "loyalty-stream-pusher", "state": "Empty", "members": 0},
        ],
        "last_backfill": {"at": "2026-12-01T09:30:00+00:00"},
        "last_replay": {"unreadable": "control record replay is not JSON"},
        "unscoped_records": ["pause"],
        "erasures_pending_in_ometria": 1,
    }


def test_status_document_without_backfill_or_replay_says_none():
    document = status_document(
        app_id="a",
        ometria_enabled=False,
        pause=PauseState(),
        backlog=Backlog("o", {}),
        groups=[],
        last_backfill=None,
        last_replay=None,
        replay_folded=None,
        unscoped=[],
        pending=[],
    )
    assert (document["paused"], document["paused_since"]) == (False, None)
    assert (document["last_backfill"], document["last_replay"]) == (None, None)


def test_status_document_replay_progress():
    mark = ReplayMark(at=AT, start={0: 5, 1: 0}, until={0: 15, 1: 10}, reset="r1", generation=2)
    document = status_document(
        app_id="a",
        ometria_enabled=True,
        pause=PauseState(),
        backlog=Backlog("o", {0: 0}),
        groups=[],
        last_backfill=None,
        last_replay=mark,
        replay_folded=12,
        unscoped=[],
        pending=[],
    )
    assert document["last_replay"] == {
        "at": "2026-12-01T09:30:00+00:00",
        "from": "earliest",
        "table_reset": True,
        "records": 20,
        "folded": 12,
    }


def test_backfill_document_counts_what_a_dry_run_would_queue():
    report = BackfillReport(
        profiles=10, contacts=8, without_email=2, missing=("x-1",), changed_meanwhile=1
    )
    assert backfill_document(report, source="app-customer_to_profile-changelog") == {
        "command": "backfill",
        "dry_run": True,
        "source": "app-customer_to_profile-changelog",
        "profiles": 10,
        "contacts": 8,
        "without_email": 2,
        "changed_meanwhile": 1,
        "customers_without_profile": 1,
    }


def test_replay_document_names_the_group_and_ranges():
    mark = ReplayMark(at=AT, start={0: 5, 1: 0}, until={0: 15, 1: 10}, source="earliest")
    assert replay_document(mark, group="app", topic="app.events", reset_state=True) == {
        "command": "replay",
        "dry_run": True,
        "group": "app",
        "topic": "app.events",
        "from": "earliest",
        "reset_state": True,
        "records": 20,
        "partitions": {"0": {"start": 5, "until": 15}, "1": {"start": 0, "until": 10}},
    }


def test_redrive_document_counts_what_would_be_published():
    report = Report("app.events.dlq", scanned=9, matched=7, published=0, still_invalid=1, cut=1)
    assert redrive_document(report) == {
        "command": "redrive",
        "dry_run": True,
        "dead_letter_topic": "app.events.dlq",
        "scanned": 9,
        "matched": 7,
        "publishable": 5,
        "still_invalid": 1,
        "cut": 1,
        "already_published": 0,
        "erased": 0,
    }


def test_forget_document_counts_records_not_ids():
    erasures = Erasures(topic="app.events", partitions=[0, 1, 2], customers=2)
    assert forget_document(erasures) == {
        "command": "forget",
        "dry_run": True,
        "topic": "app.events",
        "customers": 2,
        "partitions": [0, 1, 2],
        "records": 6,
    }
