from __future__ import annotations

import hashlib
import io
import logging
import logging.config

import orjson
import pytest

from stream.ops.logging import hash_email, hide_emails, logging_config

KEY = b"k" * 32


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
    line = _emit(
        logging_config("info", fmt="json", emails="hashed", email_key=KEY), "pushed %d records", 3
    )
    record = orjson.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "stream.test"
    assert record["message"] == "pushed 3 records"
    assert "time" in record


def test_logging_emails_are_hashed_by_default():
    line = _emit(
        logging_config("info", fmt="json", emails="hashed", email_key=KEY),
        "bad event for %s",
        "Sarah@Example.com",
    )
    assert "Sarah@Example.com" not in line
    assert hash_email("sarah@example.com", KEY) in line


def test_logging_emails_in_clear_when_configured():
    line = _emit(
        logging_config("info", fmt="text", emails="clear", email_key=KEY),
        "event for %s",
        "a@example.com",
    )
    assert "a@example.com" in line


def test_hash_email_is_stable_and_case_insensitive():
    assert hash_email("A@Example.com ", KEY) == hash_email("a@example.com", KEY)
    assert hash_email("a@example.com", KEY) != hash_email("b@example.com", KEY)


def test_hash_email_depends_on_the_key_so_candidates_cannot_be_hashed_to_match():
    assert hash_email("a@example.com", KEY) != hash_email("a@example.com", b"other-key")
    plain_sha = hashlib.sha256(b"a@example.com").hexdigest()
    assert plain_sha[:16] not in hash_email("a@example.com", KEY)


@pytest.mark.parametrize(
    "email",
    [
        "josé@exämple.com",
        "<script>@a.b",
        "a\x00b@ex.com",
        "no-tld@localhost",
        "weird@@double",
        "'quoted@example.com'",
        "李@例子.中国",
    ],
)
def test_hide_emails_catches_malformed_and_non_ascii_addresses(email):
    hidden = hide_emails(f"customer.email: {email} is not valid", KEY)
    assert "@" not in hidden
    assert hidden.startswith("customer.email: email:")


def test_logging_hides_emails_inside_tracebacks():
    config = logging_config("info", fmt="json", emails="hashed", email_key=KEY)
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        try:
            raise ValueError("bad address sarah@example.com")
        except ValueError:
            logging.getLogger("stream.test").exception("failed")
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    line = stream.getvalue()
    assert "sarah@example.com" not in line
    assert "ValueError: bad address email:" in orjson.loads(line)["exc_info"]
