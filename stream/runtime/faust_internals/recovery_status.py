"""How far the tables' recovery is: Faust's own counters and the bulk reader's, read in one place.

Faust keeps them on the table manager's `Recovery` service (`app.tables.recovery`), which its
`TableManagerT` does not declare; everything outside this package reads the counts from here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from faust.tables.recovery import Recovery


@dataclass
class RecoveryProgress:
    """How far the bulk recovery of the current assignment is: counts only, no keys."""

    started_at: float = 0.0
    applied: int = 0
    running: bool = False
    finished_at: float | None = None

    def rate(self, now: float) -> float:
        """Records applied per second since the bulk read started."""
        end = self.finished_at if self.finished_at is not None else now
        return self.applied / (end - self.started_at) if end > self.started_at else 0.0


@dataclass(frozen=True, slots=True)
class RecoveryStatus:
    """One reading of a worker's table recovery (counts only)."""

    finished: bool
    running: bool
    active_remaining: int
    standby_remaining: int
    bulk: RecoveryProgress | None


# Keyed by the Recovery service: a new app (tests build several) starts with no progress.
_progress: weakref.WeakKeyDictionary[Recovery, RecoveryProgress] = weakref.WeakKeyDictionary()


def start_progress(recovery: Recovery, progress: RecoveryProgress) -> None:
    """Report `progress` as the bulk recovery of `recovery`'s current assignment."""
    _progress[recovery] = progress


def progress_of(recovery: Any) -> RecoveryProgress | None:
    """The bulk recovery's progress for this Recovery service, if one ran."""
    return _progress.get(recovery)


def recovery_of(app: Any) -> Any:
    """The app's table Recovery service (Faust's TableManager has one; TableManagerT omits it)."""
    return app.tables.recovery


def recovery_finished(app: Any) -> bool:
    """Whether the app's tables have been recovered since the last assignment."""
    return bool(recovery_of(app).completed.is_set())


def status_of(recovery: Any) -> RecoveryStatus:
    """Read a Recovery service's counters and the bulk reader's progress."""
    return RecoveryStatus(
        finished=bool(recovery.completed.is_set()),
        running=bool(recovery.in_recovery),
        active_remaining=int(recovery.active_remaining_total()),
        standby_remaining=int(recovery.standby_remaining_total()),
        bulk=progress_of(recovery),
    )


def recovery_status(app: Any) -> RecoveryStatus:
    """Read the app's table recovery counters and the bulk reader's progress."""
    return status_of(recovery_of(app))


__all__ = [
    "RecoveryProgress",
    "RecoveryStatus",
    "progress_of",
    "recovery_finished",
    "recovery_of",
    "recovery_status",
    "start_progress",
    "status_of",
]
