"""Structured logging: one JSON object per line, emails hashed unless told otherwise.

Secrets never reach a log line in the first place (they are SecretStr and never formatted);
this module only shapes the lines and keeps customers' emails out of them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, Literal

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def hash_email(email: str) -> str:
    """A stable, non-reversible stand-in, so one customer's lines can still be followed."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]
    return f"email:{digest}"


class HashEmails(logging.Filter):
    """Replaces every email address in a record's message with its hash."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "@" in message:
            record.msg = EMAIL.sub(lambda m: hash_email(m.group(0)), message)
            record.args = None
        return True


def logging_config(
    level: str, *, fmt: Literal["json", "text"], emails: Literal["hashed", "clear"]
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
        "filters": {"hash_emails": {"()": HashEmails}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"level": level.upper(), "handlers": ["default"]},
        # One line per push request is noise; failures are logged by the delivery policy.
        "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
    }
