"""The collector settings a long-running process starts with (stream.runtime.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stream.runtime.heap import YOUNG_THRESHOLD, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_objects_alive_at_start_up_are_left_out_of_every_collection(
    restored_collector: None,
) -> None:
    alive = {"mapping": ["loaded", "at", "start-up"]}

    tune_collector()

    assert gc.get_freeze_count() > 0
    assert not any(alive is tracked for tracked in gc.get_objects())


def test_young_collections_wait_for_many_more_allocations_than_the_default(
    restored_collector: None,
) -> None:
    tune_collector()

    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700


def test_cyclic_garbage_made_after_start_up_is_still_collected(restored_collector: None) -> None:
    tune_collector()

    class Node:
        peer: Node

    first, second = Node(), Node()
    first.peer, second.peer = second, first
    del first, second

    assert gc.collect() >= 2
