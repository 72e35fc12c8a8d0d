"""The exit codes of `python -m stream`, what a script or a Job may branch on
(docs/operating.md#exit-codes)."""

from __future__ import annotations

from enum import IntEnum

from stream.runtime.failstop import EXIT_STOPPED_BEFORE_COMMIT


class ExitCode(IntEnum):
    OK = 0
    # The command looked and refused, or found what it was asked about missing; its message on
    # stderr says why and how to go on (a backfill within its cooldown, a replay with workers
    # running, a stand-in that did not get the sample records, ...).
    REFUSED = 1
    # The command line or the settings are wrong (argparse's own errors exit 2 too).
    USAGE = 2
    # Kafka could not be reached or refused the credentials before the command did anything.
    KAFKA = 3
    # A worker or pusher stopped before committing past a record it could not handle safely
    # (EX_SOFTWARE); restarted, it reads that record again.
    STOPPED_BEFORE_COMMIT = EXIT_STOPPED_BEFORE_COMMIT
