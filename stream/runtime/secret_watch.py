"""Stop the worker or pusher cleanly when its Kafka password file changes, so that it restarts
with the new password.

aiokafka keeps the password it was built with for every later connection (Faust's consumer and
producer, the pusher's clients), and offers no way to hand it a new one. So a rotated password
(Strimzi's User Operator rewrites the mounted Secret) cannot reach the running clients: their
next reconnect would fail to log in and stop the process mid-work. Instead the watch sends the
process SIGTERM as soon as the file holds another password: the usual clean stop (the batch in
flight finished, offsets committed, the group left), after which Kubernetes starts it again and
it reads the new file. An unreadable or empty file (a Secret being rewritten) is not a change.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from stream.settings import KafkaSettings, read_secret_file

logger = logging.getLogger(__name__)

# How often the file is looked at (one stat; read only when the stat changed). The kubelet
# itself takes up to about a minute to show a rotated Secret.
CHECK_EVERY = 5.0


def _stop_this_process() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class PasswordFileWatch:
    """Compares the password file with the password the process started with."""

    def __init__(
        self, path: Path, started_with: str, stop: Callable[[], None] = _stop_this_process
    ) -> None:
        self._path = path
        self._started_with = started_with
        self._stop = stop
        self._stamp: tuple[int, int, int] | None = None
        self._stopping = False

    def check(self) -> bool:
        """Stop the process once the file holds another password; True when it did."""
        if self._stopping or not self._changed():
            return self._stopping
        self._stopping = True
        logger.warning(
            "the Kafka password file %s changed; stopping so that the restarted process logs "
            "in with the new password",
            self._path,
        )
        self._stop()
        return True

    def _changed(self) -> bool:
        try:
            info = self._path.stat()
            stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
            if stamp == self._stamp:
                return False
            password = read_secret_file(self._path).get_secret_value()
        except OSError:
            # Looked at again next time: the Secret may be in the middle of an update.
            self._stamp = None
            return False
        self._stamp = stamp
        return bool(password) and password != self._started_with


def password_file_watch(
    kafka: KafkaSettings, stop: Callable[[], None] = _stop_this_process
) -> PasswordFileWatch | None:
    """A watch when the password came from STREAM_KAFKA__SASL_PASSWORD_FILE, else None."""
    path = kafka.sasl_password_path
    if path is None or kafka.sasl_password is None:
        return None
    if not kafka.security_protocol.startswith("SASL_"):
        return None
    return PasswordFileWatch(path, kafka.sasl_password.get_secret_value(), stop)
