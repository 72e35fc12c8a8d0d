from __future__ import annotations

from stream.skips import SkipWatch, StallWatch


def test_skip_watch_consecutive_offsets_need_no_seek():
    watch = SkipWatch()
    assert [watch.check("p0", offset) for offset in range(5)] == [None] * 5


def test_skip_watch_jump_reports_the_first_missing_offset():
    watch = SkipWatch()
    for offset in range(29):
        watch.check("p1", offset)
    assert watch.check("p1", 35) == 29


def test_skip_watch_same_offset_again_is_not_a_second_jump():
    watch = SkipWatch()
    watch.check("p1", 10)
    assert watch.check("p1", 12) == 11  # reported once; the agent reads 11 itself
    assert watch.check("p1", 12) is None  # delivered again (a redelivery): nothing new missing
    assert watch.check("p1", 13) is None


def test_skip_watch_every_separate_jump_is_reported():
    watch = SkipWatch()
    watch.check("p1", 28)
    assert watch.check("p1", 35) == 29
    assert watch.check("p1", 36) is None
    assert watch.check("p1", 40) == 37  # a second skip later on is caught too


def test_skip_watch_older_offsets_after_a_rebalance_seek_are_accepted():
    watch = SkipWatch()
    watch.check("p1", 28)
    assert watch.check("p1", 35) == 29
    # Faust seeking back re-delivers older records, then newer ones: no further jumps.
    arrivals = [29, 30, 31, 32, 33, 34, 35, 36, 37, 38]
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


def test_skip_watch_first_record_beyond_the_committed_offset_is_a_jump():
    watch = SkipWatch()
    watch.reset({"p0": 30})
    assert watch.check("p0", 34) == 30
    assert watch.check("p1", 7) is None  # nothing committed: nothing to compare with


def test_skip_watch_first_record_at_the_committed_offset_is_in_order():
    watch = SkipWatch()
    watch.reset({"p0": 30})
    assert watch.check("p0", 30) is None


def test_stall_watch_partition_without_progress_while_records_wait_is_reported():
    watch = StallWatch(patience=60)
    assert watch.stalled("p", seen=9, end=50, now=0) is None
    assert watch.stalled("p", seen=9, end=50, now=59) is None
    assert watch.stalled("p", seen=9, end=60, now=61) == 61


def test_stall_watch_progress_restarts_the_clock():
    watch = StallWatch(patience=60)
    watch.stalled("p", seen=9, end=50, now=0)
    assert watch.stalled("p", seen=20, end=50, now=50) is None
    assert watch.stalled("p", seen=20, end=50, now=100) is None
    assert watch.stalled("p", seen=20, end=50, now=111) == 61


def test_stall_watch_caught_up_partition_never_stalls():
    watch = StallWatch(patience=60)
    assert watch.stalled("p", seen=49, end=50, now=0) is None
    assert watch.stalled("p", seen=49, end=50, now=1000) is None
    assert watch.stalled("q", seen=None, end=0, now=1000) is None


def test_stall_watch_never_read_partition_with_records_stalls():
    watch = StallWatch(patience=60)
    watch.stalled("p", seen=None, end=5, now=0)
    assert watch.stalled("p", seen=None, end=5, now=70) == 70


def test_stall_watch_forgotten_partition_starts_its_clock_again():
    watch = StallWatch(patience=60)
    watch.stalled("p", seen=9, end=50, now=0)
    watch.forget("p")
    assert watch.stalled("p", seen=9, end=50, now=70) is None
    assert watch.stalled("p", seen=9, end=50, now=131) == 61
