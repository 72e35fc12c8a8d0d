"""Dead letters: original headers kept, `dlq.*` headers added (replaced on re-dead-lettering)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from stream.domain.dlq import MAX_HEADER_CHARS, DeadLetter, LetterTooLarge, read_headers

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


KAFKA_DEFAULT_MAX = 1_048_588  # the broker's default message.max.bytes


def _kafka_size(fitted: DeadLetter) -> int:
    """What aiokafka computes for the record alone in its batch (what the broker compares)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(
        fitted.key, fitted.value, fitted.headers()
    )


def test_a_letter_that_fits_is_kept_whole():
    small = letter()
    assert small.fitted(KAFKA_DEFAULT_MAX) is small


def test_a_letter_too_large_for_its_topic_keeps_the_start_of_the_value_and_says_so():
    value = b"x" * (KAFKA_DEFAULT_MAX - 100)
    fitted = letter(value=value).fitted(KAFKA_DEFAULT_MAX)
    assert value.startswith(fitted.value)
    assert len(fitted.value) > KAFKA_DEFAULT_MAX - 2_000
    assert _kafka_size(fitted) <= KAFKA_DEFAULT_MAX
    headers = read_headers(fitted.headers())
    assert headers["value_truncated"] == "true"
    assert headers["value_size"] == str(len(value))
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == (
        "loyalty.events",
        "3",
        "1234",
    )
    assert dict(fitted.headers())["trace-id"] == b"abc"


def test_a_letter_whose_original_headers_leave_no_room_drops_them_and_counts_them():
    fitted = letter(original_headers=[("big", b"h" * 60_000)]).fitted(50_000)
    assert _kafka_size(fitted) <= 50_000
    headers = read_headers(fitted.headers())
    assert headers["headers_dropped"] == "1"
    assert "big" not in dict(fitted.headers())
    assert fitted.value == letter().value


def test_a_letter_whose_key_alone_is_too_large_says_which_setting_to_raise():
    with pytest.raises(LetterTooLarge, match=r"max\.message\.bytes"):
        letter(key=b"k" * 5_000).fitted(4_000)


@given(
    key=st.binary(max_size=300),
    value=st.binary(max_size=20_000),
    original=st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=3_000)), max_size=4),
    limit=st.integers(min_value=2_500, max_value=30_000),
)
def test_a_fitted_letter_never_exceeds_what_kafka_counts(key, value, original, limit):
    fitted = letter(key=key, value=value, original_headers=original).fitted(limit)
    assert _kafka_size(fitted) <= limit
    assert value.startswith(fitted.value)
