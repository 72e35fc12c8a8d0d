"""Kept JSON bytes are right-sized (stream.domain.json_bytes), and why that is needed."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson

from stream.domain import json_bytes
from stream.domain.profile import Profile

# About the size of a stored profile.
DOCUMENT = {"customer_id": "c-1", "as_of": {f"f{n}": "2026-12-05T10:00:00Z" for n in range(40)}}


def _allocated(make: Callable[[], bytes]) -> tuple[int, int]:
    """Bytes allocated for what `make` returns (traced), and its length."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        value = make()
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return allocated, len(value)


def test_orjson_output_holds_its_whole_write_buffer():
    # The upstream behaviour worked around: when this fails, orjson right-sizes its output
    # again and json_bytes can go.
    allocated, length = _allocated(lambda: orjson.dumps(DOCUMENT))
    assert allocated > 2 * length


def test_kept_json_is_no_larger_than_its_length():
    allocated, length = _allocated(lambda: json_bytes.dumps(DOCUMENT))
    assert allocated < length + 100
    assert json_bytes.dumps(DOCUMENT, orjson.OPT_SORT_KEYS) == orjson.dumps(
        DOCUMENT, option=orjson.OPT_SORT_KEYS
    )


def test_a_stored_profile_is_right_sized():
    profile = Profile(customer_id="c-1", as_of={f"field_{n}": "2026-12-05" for n in range(40)})
    allocated, length = _allocated(profile.to_bytes)
    assert allocated < length + 100
