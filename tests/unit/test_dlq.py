"""Dead letters: original headers kept, `dlq.*` headers added (replaced on re-dead-lettering)."""

from __future__ import annotations

from datetime import UTC, datetime

from stream.domain.dlq import MAX_HEADER_CHARS, DeadLetter, read_headers

FAILED_AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def letter(**overrides) -> DeadLetter:
    fields = {
        "stage": "parse",
        "error_class": "SchemaViolation",
        "reason": "data.points: Input should be greater than or equal to 0 (got -5)",
        "key": b"c1",
        "value": b'{"type": "points.earned"}',
        "failed_at": FAILED_AT,
        "source_topic": "loyalty.events",
        "source_partition": 3,
        "source_offset": 1234,
        "original_headers": [("trace-id", b"abc"), ("producer", b"rivo")],
    }
    return DeadLetter(**{**fields, **overrides})


def test_headers_original_headers_kept_first_and_in_order():
    headers = letter().headers()

    assert headers[:2] == [("trace-id", b"abc"), ("producer", b"rivo")]
    assert all(name.startswith("dlq.") for name, _ in headers[2:])


def test_headers_add_dlq_stage_error_reason_and_source():
    headers = dict(letter().headers())

    assert headers["dlq.stage"] == b"parse"
    assert headers["dlq.error_class"] == b"SchemaViolation"
    assert headers["dlq.reason"] == (
        b"data.points: Input should be greater than or equal to 0 (got -5)"
    )
    assert headers["dlq.failed_at"] == b"2026-11-21T10:00:00+00:00"
    assert headers["dlq.source.topic"] == b"loyalty.events"
    assert headers["dlq.source.partition"] == b"3"
    assert headers["dlq.source.offset"] == b"1234"


def test_headers_unknown_source_omitted():
    headers = dict(letter(source_topic=None, source_partition=None, source_offset=None).headers())

    assert not any(name.startswith("dlq.source.") for name in headers)


def test_headers_details_added_under_dlq_prefix():
    headers = dict(letter(stage="push", details={"status": "400", "body": "bad"}).headers())

    assert headers["dlq.status"] == b"400"
    assert headers["dlq.body"] == b"bad"


def test_headers_long_reason_truncated_and_utf8_encoded():
    headers = dict(letter(reason="é" * (MAX_HEADER_CHARS + 10)).headers())

    assert headers["dlq.reason"].decode("utf-8") == "é" * MAX_HEADER_CHARS


def test_headers_re_dead_lettered_record_drops_previous_dlq_set():
    first = letter(details={"status": "503"})
    second = letter(
        stage="push",
        error_class="Permanent",
        reason="Ometria refused the record with 400",
        source_partition=None,
        original_headers=first.headers(),
    )

    headers = second.headers()

    names = [name for name, _ in headers]
    assert len(names) == len(set(names))
    assert "dlq.status" not in names
    assert "dlq.source.partition" not in names
    assert ("trace-id", b"abc") in headers
    assert read_headers(headers)["stage"] == "push"
    assert read_headers(headers)["error_class"] == "Permanent"


def test_read_headers_round_trips_dlq_headers_without_prefix():
    dead = letter(details={"status": "400"})

    assert read_headers(dead.headers()) == {
        "stage": "parse",
        "error_class": "SchemaViolation",
        "reason": "data.points: Input should be greater than or equal to 0 (got -5)",
        "failed_at": "2026-11-21T10:00:00+00:00",
        "source.topic": "loyalty.events",
        "source.partition": "3",
        "source.offset": "1234",
        "status": "400",
    }


def test_read_headers_ignores_other_headers_and_replaces_bad_utf8():
    headers = [("trace-id", b"abc"), ("dlq.reason", b"bad \xff byte")]

    assert read_headers(headers) == {"reason": "bad \ufffd byte"}
