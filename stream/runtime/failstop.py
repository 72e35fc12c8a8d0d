"""Stop the worker at once, before Faust can commit an input offset it must not commit.

Faust acks a message whose processing raised and commits acked offsets when it stops, even on
a crash. When a write that protects a record (outbox, dead letter, changelog) fails or cannot
be confirmed, the only safe move is to leave without any shutdown: the group moves the
partitions on, and the records after the last commit are read again (their effect on state
applies once: see stream.domain.profile).
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

logger = logging.getLogger(__name__)

# EX_SOFTWARE: Kubernetes restarts the pod; the exit code says it was deliberate.
EXIT_STOPPED_BEFORE_COMMIT = 70


def stop_before_commit(reason: str, exc: BaseException | None = None) -> NoReturn:
    """Log why, then end the process without running Faust's shutdown (and its commit)."""
    logger.critical("stopping before committing input offsets: %s", reason, exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_STOPPED_BEFORE_COMMIT)
