"""Shared fixtures: event builders for the pure core."""

from __future__ import annotations

import pytest

from tests.support.events import make_event


@pytest.fixture
def event():
    return make_event
