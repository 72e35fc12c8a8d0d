"""Structured logging: one JSON object per line, emails replaced by a keyed hash.

Secrets never reach a log line in the first place (they are SecretStr and never formatted);
this module only shapes the lines and keeps customers' emails out of them, in the message and
in tracebacks alike.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import traceback
from typing import Any, Literal

# Anything with an `@` between two runs of non-space characters counts as an email: a line
# must not leak a malformed or non-ASCII address just because it is not a valid one.
EMAIL = re.compile(r"\S+@\S+")


def hash_email(email: str, key: bytes) -> str:
    """A stable stand-in for an email, so one customer's lines can still be followed.

    Keyed (HMAC-SHA256), so that hashing a list of candidate addresses does not reverse it.
    """
    digest = hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:16]
    return f"email:{digest}"


def hide_emails(text: str, key: bytes) -> str:
    """`text` with every email-like run replaced by its keyed hash."""
    if "@" not in text:
        return text
    return EMAIL.sub(lambda match: hash_email(match.group(0), key), text)


class HashEmails(logging.Filter):
    """Replaces every email address in a record's message and traceback with its keyed hash."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._key = key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg = hide_emails(message, self._key)
            record.args = None
        if record.exc_info:
            # Formatters would render the exception afresh from exc_info; render it here once,
            # hidden, and hand them only the text.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = hide_emails(text, self._key)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = hide_emails(record.exc_text, self._key)
        if record.stack_info:
            record.stack_info = hide_emails(record.stack_info, self._key)
        return True


def logging_config(
    level: str,
    *,
    fmt: Literal["json", "text"],
    emails: Literal["hashed", "clear"],
    email_key: bytes,
) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker (Faust's Worker applies it)."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if fmt == "json"
        else {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"}
    )
    handler: dict[str, Any] = {
        "class": "logging.StreamHandler",
        "formatter": "default",
        "stream": "ext://sys.stderr",
    }
    if emails == "hashed":
        handler["filters"] = ["hash_emails"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"hash_emails": {"()": HashEmails, "key": email_key}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"level": level.upper(), "handlers": ["default"]},
        # One line per push request is noise; failures are logged by the delivery policy.
        "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
    }
