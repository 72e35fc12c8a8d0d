"""The progress topic's record value: the outbox offset the pusher group committed."""

from __future__ import annotations

import pytest

from stream.runtime.outbox_progress import encode_offset, parse_offset


@pytest.mark.parametrize("offset", [0, 7, 2**62])
def test_offset_round_trips_through_its_record_value(offset):
    assert parse_offset(encode_offset(offset)) == offset


@pytest.mark.parametrize("raw", [b"", b"-1", b"+3", b" 12", b"1_000", b"12.0", b'{"offset":1}'])
def test_offset_value_that_is_not_plain_decimal_digits_is_refused(raw):
    with pytest.raises(ValueError, match="not an outbox offset"):
        parse_offset(raw)
