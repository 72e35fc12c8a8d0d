from __future__ import annotations

import io
import logging
import logging.config

import orjson

from stream.logging import hash_email, logging_config


def _emit(config, message, *args) -> str:
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        logging.getLogger("stream.test").warning(message, *args)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    return stream.getvalue().strip()


def test_logging_json_line_has_time_level_logger_and_message():
    line = _emit(logging_config("info", fmt="json", emails="hashed"), "pushed %d records", 3)
    record = orjson.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "stream.test"
    assert record["message"] == "pushed 3 records"
    assert "time" in record


def test_logging_emails_are_hashed_by_default():
    line = _emit(
        logging_config("info", fmt="json", emails="hashed"), "bad event for %s", "Sarah@Example.com"
    )
    assert "Sarah@Example.com" not in line
    assert hash_email("sarah@example.com") in line


def test_logging_emails_in_clear_when_configured():
    line = _emit(
        logging_config("info", fmt="text", emails="clear"), "event for %s", "a@example.com"
    )
    assert "a@example.com" in line


def test_hash_email_is_stable_and_case_insensitive():
    assert hash_email("A@Example.com ") == hash_email("a@example.com")
    assert hash_email("a@example.com") != hash_email("b@example.com")
