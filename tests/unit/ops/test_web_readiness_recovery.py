"""/readyz's `recovery` field: records still to apply and the bulk reader's rate, counts only."""

from __future__ import annotations

import time
from collections import Counter
from unittest.mock import MagicMock

import faust
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.ops.web import _recovery_progress
from stream.runtime.faust_internals.recovery_status import (
    RecoveryProgress,
    start_progress,
    status_of,
)

TOPIC = "t-customer_to_profile-changelog"


def _recovery(name: str) -> Recovery:
    recovery = Recovery(faust.App(name), MagicMock())
    recovery.active_highwaters = Counter({TP(TOPIC, 0): 999, TP(TOPIC, 1): 499})
    recovery.active_offsets = Counter({TP(TOPIC, 0): 199, TP(TOPIC, 1): 499})
    recovery.standby_highwaters = Counter({TP(TOPIC, 2): 99})
    recovery.standby_offsets = Counter({TP(TOPIC, 2): 99})
    return recovery


def test_a_running_recovery_reports_the_records_left_and_the_rate_so_far():
    recovery = _recovery("t-ready-running")
    recovery.in_recovery = True
    start_progress(
        recovery, RecoveryProgress(started_at=time.monotonic() - 1.0, applied=700, running=True)
    )
    body = _recovery_progress(status_of(recovery))
    assert body["in_progress"] is True
    assert body["remaining"] == 800
    assert body["applied"] == 700
    assert 0 < body["per_second"] <= 700


def test_after_recovery_nothing_remains_and_the_rate_is_the_finished_runs():
    recovery = _recovery("t-ready-done")
    recovery.in_recovery = False
    done = RecoveryProgress(started_at=10.0, applied=30_000, finished_at=11.0)
    start_progress(recovery, done)
    assert _recovery_progress(status_of(recovery)) == {
        "in_progress": False,
        "remaining": 0,
        "applied": 30_000,
        "per_second": 30_000,
        "standby_remaining": 0,
    }


def test_without_a_bulk_run_only_faust_counts_are_reported():
    recovery = _recovery("t-ready-none")
    recovery.in_recovery = True
    assert _recovery_progress(status_of(recovery)) == {
        "in_progress": True,
        "remaining": 800,
        "standby_remaining": 0,
    }


def test_a_standby_behind_its_changelog_reports_the_records_it_lacks():
    recovery = _recovery("t-ready-standby")
    recovery.in_recovery = False
    recovery.standby_highwaters[TP(TOPIC, 2)] = 4_999
    recovery.standby_offsets[TP(TOPIC, 2)] = 999
    assert _recovery_progress(status_of(recovery))["standby_remaining"] == 4_000
