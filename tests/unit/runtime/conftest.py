"""Fixtures of the runtime's unit tests."""

from __future__ import annotations

import types
from unittest.mock import AsyncMock

import pytest

from stream.runtime.app import app
from tests.support.producer import acknowledged


@pytest.fixture
def producer(monkeypatch):
    """The app's producer replaced: its sends are acknowledged at once and recorded."""
    send = AsyncMock(side_effect=acknowledged)
    monkeypatch.setattr(app, "_producer", types.SimpleNamespace(send=send))
    return send
