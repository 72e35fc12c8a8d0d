"""A stand-in for Faust's producer in unit tests: every send is acknowledged at once."""

from __future__ import annotations

import asyncio
import types


def acknowledged(*args, **kwargs) -> asyncio.Future:
    """What Faust's producer.send returns: a future of the broker's acknowledgement, at the
    next offset."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(types.SimpleNamespace(partition=0, offset=acknowledged.offset))
    acknowledged.offset += 1
    return future


acknowledged.offset = 0
