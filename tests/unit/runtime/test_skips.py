from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from stream.runtime.skips import (
    BatchProgress,
    BlindWatch,
    RecoveryWatch,
    SkipWatch,
    StallWatch,
)


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


def test_stall_watch_offsets_read_back_empty_wait_for_nothing_until_the_end_moves():
    # A transaction's commit marker (or a compacted record) ends the partition: the end lies
    # past the last record the agent can ever see.
    watch = StallWatch(patience=60)
    watch.stalled("p", seen=4, end=6, now=0)
    assert watch.stalled("p", seen=4, end=6, now=61) == 61
    watch.settle("p", seen=4, end=6)
    assert watch.stalled("p", seen=4, end=6, now=1000) is None
    # Records written after the marker get the whole patience, counted from now.
    assert watch.stalled("p", seen=4, end=9, now=1010) is None
    assert watch.stalled("p", seen=4, end=9, now=1069) is None
    assert watch.stalled("p", seen=4, end=9, now=1071) == 61


def test_stall_watch_a_settled_gap_hides_no_later_stall():
    watch = StallWatch(patience=60)
    watch.settle("p", seen=4, end=6)
    watch.stalled("p", seen=8, end=20, now=0)
    assert watch.stalled("p", seen=8, end=20, now=61) == 61
    watch.settle("q", seen=4, end=6)
    watch.reset()
    watch.stalled("q", seen=4, end=6, now=0)
    assert watch.stalled("q", seen=4, end=6, now=61) == 61, "a new assignment judges afresh"


TP1 = TP("events", 1)


@pytest.fixture
async def faust_consumer():
    """Faust's real consumer and its offset bookkeeping; no broker is contacted."""
    # On the test's own loop: an app left to make one leaves it unclosed.
    app = faust.App("skips-test", broker="kafka://127.0.0.1:1", loop=asyncio.get_running_loop())
    app.topics._acking_topics.add(TP1.topic)  # as Faust's conductor does for an agent's topic
    consumer = app.consumer
    yield consumer
    consumer._thread.thread_loop.close()  # made with the consumer, for a thread never started


def _acked(consumer, committed: int, acked: range):
    consumer._committed_offset[TP1] = committed
    for offset in acked:
        consumer.ack(Message(TP1.topic, TP1.partition, offset, 0.0, 0, None, b"k", b"v", None))
    return consumer


def test_faust_alone_never_commits_past_records_its_stream_did_not_deliver(faust_consumer):
    # The upstream behaviour the workaround exists for: when this fails, faust-streaming
    # commits past such records by itself and the fold need not enter read-back records.
    consumer = _acked(faust_consumer, committed=373, acked=range(380, 385))
    assert consumer._acked[TP1] == list(range(380, 385))
    assert consumer._new_offset(TP1) is None


def test_recovery_watch_a_recovery_reading_nothing_while_records_remain_is_stalled():
    watch = RecoveryWatch(patience=20)
    assert watch.stalled(True, 120, now=0) is None
    assert watch.stalled(True, 120, now=19) is None
    assert watch.stalled(True, 120, now=21) == 21


def test_recovery_watch_a_recovery_that_reads_is_not_stalled():
    watch = RecoveryWatch(patience=20)
    for n, remaining in enumerate(range(120, 0, -10)):
        assert watch.stalled(True, remaining, now=15.0 * n) is None


def test_recovery_watch_no_recovery_or_nothing_left_is_never_stalled():
    watch = RecoveryWatch(patience=20)
    assert watch.stalled(False, 120, now=0) is None
    assert watch.stalled(False, 120, now=100) is None
    assert watch.stalled(True, 0, now=200) is None
    assert watch.stalled(True, 0, now=300) is None


def test_a_blind_watch_counts_from_the_first_check_that_could_not_look():
    watch = BlindWatch(patience=30)
    assert watch.blind(100.0) is None
    assert watch.blind(125.0) is None
    assert watch.blind(131.0) == 31.0
    watch.saw()
    assert watch.blind(200.0) is None  # a check that looked starts the count again
    assert watch.blind(229.0) is None


def test_batch_progress_a_batch_that_moved_since_the_last_look_is_progress():
    progress = BatchProgress()
    with progress.batch():
        progress.step()
        assert progress.moved() is True
        progress.step()
        assert progress.moved() is True


def test_batch_progress_a_batch_stuck_since_the_last_look_is_no_progress():
    progress = BatchProgress()
    with progress.batch():
        progress.step()
        assert progress.moved() is True
        assert progress.moved() is False  # nothing done between the two looks


def test_batch_progress_no_batch_in_flight_is_no_progress():
    progress = BatchProgress()
    assert progress.moved() is False
    with progress.batch():
        progress.step()
    assert progress.moved() is False  # the batch ended: the offsets judge from here


def test_batch_progress_a_batch_that_raised_is_no_longer_in_flight():
    progress = BatchProgress()

    def fold() -> None:
        with progress.batch():
            progress.step()
            raise RuntimeError("write refused")

    with pytest.raises(RuntimeError):
        fold()
    assert progress.moved() is False
