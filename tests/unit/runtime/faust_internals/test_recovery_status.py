"""What stream.runtime.faust_internals.recovery_status assumes about where faust-streaming keeps
a worker's table recovery state: an upgrade that moves it fails here."""

from __future__ import annotations

from collections import Counter
from unittest.mock import MagicMock

import faust
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.runtime.faust_internals.recovery_status import (
    RecoveryProgress,
    recovery_finished,
    recovery_of,
    recovery_status,
    start_progress,
    status_of,
)

TOPIC = "t-customer_to_profile-changelog"


def test_the_table_manager_holds_the_apps_recovery_service():
    app = faust.App("t-status-manager")
    recovery = recovery_of(app)
    assert isinstance(recovery, Recovery)
    assert recovery is app.tables.recovery  # type: ignore[attr-defined]


def test_recovery_is_finished_once_its_completed_event_is_set():
    app = faust.App("t-status-finished")
    assert recovery_finished(app) is False
    recovery_of(app).completed.set()
    assert recovery_finished(app) is True
    assert recovery_status(app).finished is True


def test_a_status_reads_faust_counters_and_the_bulk_readers_progress():
    recovery = Recovery(faust.App("t-status-counters"), MagicMock())
    recovery.in_recovery = True
    recovery.active_highwaters = Counter({TP(TOPIC, 0): 99})
    recovery.active_offsets = Counter({TP(TOPIC, 0): 9})
    recovery.standby_highwaters = Counter({TP(TOPIC, 1): 49})
    recovery.standby_offsets = Counter({TP(TOPIC, 1): 39})
    assert status_of(recovery).bulk is None
    progress = RecoveryProgress(started_at=1.0, applied=5, running=True)
    start_progress(recovery, progress)
    status = status_of(recovery)
    assert status.running is True
    assert status.finished is False
    assert status.active_remaining == 90
    assert status.standby_remaining == 10
    assert status.bulk is progress
