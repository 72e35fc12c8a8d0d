from __future__ import annotations

from stream.skips import SkipWatch


def test_skip_watch_consecutive_offsets_need_no_seek():
    watch = SkipWatch()
    assert [watch.check("p0", offset) for offset in range(5)] == [None] * 5


def test_skip_watch_jump_asks_to_seek_back_to_the_first_missing_offset():
    watch = SkipWatch()
    for offset in range(29):
        watch.check("p1", offset)
    assert watch.check("p1", 35) == 29


def test_skip_watch_same_jump_again_is_let_through_as_a_genuine_gap():
    watch = SkipWatch()
    watch.check("p1", 10)
    assert watch.check("p1", 12) == 11  # first time: seek back
    assert watch.check("p1", 12) is None  # a transaction marker at 11: the same jump again
    assert watch.check("p1", 13) is None


def test_skip_watch_records_read_again_after_the_seek_are_accepted():
    watch = SkipWatch()
    watch.check("p1", 28)
    assert watch.check("p1", 35) == 29
    # Queued records arrive first, then the re-read ones, then duplicates: no further seeks.
    arrivals = [36, 37, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38]
    assert [watch.check("p1", offset) for offset in arrivals] == [None] * len(arrivals)


def test_skip_watch_partitions_are_independent():
    watch = SkipWatch()
    watch.check("p0", 5)
    watch.check("p1", 100)
    assert watch.check("p0", 6) is None
    assert watch.check("p1", 103) == 101


def test_skip_watch_reset_forgets_positions_after_a_new_assignment():
    watch = SkipWatch()
    watch.check("p0", 5)
    watch.reset()
    assert watch.check("p0", 500) is None  # another worker read 6..499 meanwhile
