"""JSON bytes that are kept: orjson's output, right-sized.

Since 3.12, `orjson.dumps` returns bytes whose allocation is its whole write buffer (at least
4 KiB, grown by doubling): a 1.2 KB profile holds about 15 KiB until it is freed. Its final
`_PyBytes_Resize` is skipped because the size is set first (home-assistant/core#181245 traces
it to orjson's commit c2a6e8ff). The fold keeps a batch's encoded profiles until the changelog
has them, so the waste grows with the batch size, ten times what it keeps. Copying into an
exact-size bytes costs a fraction of a microsecond. tests/unit/domain/test_json_bytes.py fails when
orjson stops over-allocating, so this module can then go.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any, option: int = 0) -> bytes:
    """`orjson.dumps(value, option=option)` in bytes no larger than their length."""
    return bytes(memoryview(orjson.dumps(value, option=option)))
