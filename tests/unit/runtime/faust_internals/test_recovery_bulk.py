"""What stream.runtime.faust_internals.recovery and its changelog reader assume about
faust-streaming 0.15.3, one test each: an upgrade that changes any of it fails here."""

from __future__ import annotations

import inspect
from collections import Counter
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock

import faust
from faust.tables.recovery import Recovery
from faust.types import TP

from stream.runtime.faust_internals import rocksdb as faust_rocksdb
from stream.runtime.faust_internals.changelog_events import ChangelogEvent, ChangelogMessage
from stream.runtime.faust_internals.recovery import install
from tests.support.faust_tables import profile_table

TOPIC = "t-customer_to_profile-changelog"


def test_recovery_seeks_actives_once_their_highwaters_and_offsets_are_known_before_reading():
    # A mode Service.task: the coroutine function is behind `.fun`.
    source = inspect.getsource(Recovery._restart_recovery.fun)
    highwaters = source.index("_build_highwaters")
    offsets = source.index("self._build_offsets")
    seek = source.index('consumer, assigned_active_tps, active_offsets, "active"')
    need = source.index("if self.need_recovery():")
    assert highwaters < offsets < seek < need
    assert list(inspect.signature(Recovery._seek_offsets).parameters) == [
        "self",
        "consumer",
        "tps",
        "offsets",
        "title",
    ]


def test_a_timed_out_recovery_step_stops_the_recovery_service():
    # Why the bulk read keeps to a share of broker_request_timeout.
    source = inspect.getsource(Recovery._wait)
    assert "timeout=timeout" in source
    assert "raise ServiceStopped()" in source
    assert "return WaitResults([], [], True)" in inspect.getsource(Recovery.wait_first)


async def test_highwater_is_the_offset_of_the_last_record():
    tp = TP(TOPIC, 0)
    consumer = SimpleNamespace(highwaters=AsyncMock(return_value={tp: 10}))
    destination: Counter[TP] = Counter()
    await Recovery._build_highwaters(MagicMock(), consumer, {tp}, destination, "active")
    assert destination == {tp: 9}


async def test_start_offset_is_the_last_record_applied():
    tp, fresh = TP(TOPIC, 0), TP(TOPIC, 1)
    consumer = SimpleNamespace(earliest_offsets=AsyncMock(return_value={tp: 5, fresh: 0}))
    destination: Counter[TP] = Counter({tp: 7, fresh: None})  # 7: persisted by a local store
    await Recovery._build_offsets(MagicMock(), consumer, {tp, fresh}, destination, "active")
    assert destination == {tp: 7, fresh: -1}


def test_recovery_is_not_needed_once_offsets_reach_the_highwaters():
    tp = TP(TOPIC, 0)
    state = SimpleNamespace(active_highwaters=Counter({tp: 9}), active_offsets=Counter({tp: 8}))
    state.active_remaining = lambda: Recovery.active_remaining(state)  # type: ignore[attr-defined]
    assert Recovery.need_recovery(state) is True  # type: ignore[arg-type]
    state.active_offsets[tp] = 9
    assert Recovery.need_recovery(state) is False  # type: ignore[arg-type]
    assert Recovery.active_remaining_total(state) == 0  # type: ignore[arg-type]


def test_recovery_service_has_the_state_the_bulk_reader_reads():
    app = faust.App("t-recovery-attrs")
    recovery = Recovery(app, MagicMock())
    for name in ("tp_to_table", "active_offsets", "active_highwaters", "in_recovery"):
        assert hasattr(recovery, name), name
    assert not recovery.signal_recovery_start.is_set()
    assert recovery.should_stop is False


def test_a_tables_per_event_callback_is_held_where_the_bulk_reader_looks():
    app = faust.App("t-recovery-callback")

    async def callback(event: object) -> None: ...

    table = app.Table("t", on_changelog_event=callback)
    assert table._on_changelog_event is callback


def _events(app: faust.App, table: object) -> list[ChangelogEvent]:
    schema = table.changelog_topic.schema  # type: ignore[attr-defined]

    def key(message: ChangelogMessage) -> object:
        return schema.loads_key(app, message)

    def value(message: ChangelogMessage) -> object:
        return schema.loads_value(app, message)

    records = [
        (0, b'"a"', b"a1"),
        (1, b'"b"', b"b1"),
        (2, b'"a"', b"a2"),
        (3, b'"b"', None),
    ]
    return [
        ChangelogEvent(ChangelogMessage(TP(TOPIC, 0), o, k, v), key, value) for o, k, v in records
    ]


def test_the_memory_store_applies_stand_in_events_with_tombstones(tmp_path):
    app, table = profile_table("t-recovery-memory", "memory://", tmp_path)
    table.apply_changelog_batch(_events(app, table))  # type: ignore[attr-defined]
    store = table.data  # type: ignore[attr-defined]
    assert dict(store.data) == {"a": b"a2"}


def test_the_rocksdb_store_applies_stand_in_events_and_persists_the_offset(tmp_path):
    app, table = profile_table("t-recovery-rocksdb", "rocksdb://", tmp_path)
    table.apply_changelog_batch(_events(app, table))  # type: ignore[attr-defined]
    store = table.data  # type: ignore[attr-defined]
    db = store._db_for_partition(0)
    assert db[b'"a"'] == b"a2"
    assert db.get(b'"b"') is None
    assert store.persisted_offset(TP(TOPIC, 0)) == 3


def test_flush_memtables_writes_what_a_rocksdb_store_holds_in_memory_to_disk(tmp_path):
    app, table = profile_table("t-recovery-flush", "rocksdb://", tmp_path)
    table.apply_changelog_batch(_events(app, table))  # type: ignore[attr-defined]
    store = table.data  # type: ignore[attr-defined]
    db = store._db_for_partition(0)
    in_memory = "rocksdb.num-entries-active-mem-table"
    assert db.property_int_value(in_memory) > 0
    faust_rocksdb.flush_memtables(store)
    assert db.property_int_value(in_memory) == 0
    assert db[b'"a"'] == b"a2"


def test_flush_memtables_leaves_a_memory_store_alone(tmp_path):
    app, table = profile_table("t-recovery-flush-memory", "memory://", tmp_path)
    table.apply_changelog_batch(_events(app, table))  # type: ignore[attr-defined]
    faust_rocksdb.flush_memtables(table.data)  # type: ignore[attr-defined]
    assert dict(table.data.data) == {"a": b"a2"}  # type: ignore[attr-defined]


def test_install_wraps_seek_offsets_once_and_keeps_the_original_behind_it():
    before = Recovery._seek_offsets
    try:
        install({"bootstrap_servers": "127.0.0.1:1"})
        wrapped = Recovery._seek_offsets
        install({"bootstrap_servers": "127.0.0.1:1"})
        assert Recovery._seek_offsets is not wrapped  # replaced, not stacked
        assert Recovery._seek_offsets.__wrapped__ is wrapped.__wrapped__  # type: ignore[attr-defined]
    finally:
        Recovery._seek_offsets = before  # type: ignore[method-assign]


def test_faust_reads_changelogs_committed_only_when_the_app_runs_transactions():
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    source = inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    assert 'if self.consumer.in_transaction:\n            isolation_level = "read_committed"' in (
        source
    )
    assert faust.App("t-recovery-tx").in_transaction is False


def test_recovery_seeks_standbys_after_the_actives_are_recovered_and_before_resuming_them():
    source = inspect.getsource(Recovery._restart_recovery.fun)
    recovered = source.index('self.log.info("Recovery complete")')
    seek = source.index('consumer, standby_tps, standby_offsets, "standby"')
    resume = source.index("T(consumer.resume_partitions)(standby_tps)")
    completed = source.index("T(self.on_recovery_completed)(generation_id)")
    assert recovered < seek < resume < completed
    # The standby start offsets are the last ones applied, as the actives' are.
    assert 'consumer, assigned_standby_tps, standby_offsets, "standby"' in source


def test_faust_applies_a_changelog_record_only_past_the_offset_already_applied():
    # Why advancing standby_offsets after a bulk read keeps Faust's path from applying again.
    source = inspect.getsource(Recovery._slurp_changelogs.fun)
    assert "offsets = standby_offsets" in source
    assert "if seen_offset is None or offset > seen_offset:" in source
    assert "offsets[tp] = offset" in source


async def test_install_catches_standbys_up_in_bulk_before_faust_seeks_them(monkeypatch):
    from stream.runtime.faust_internals import recovery as faust_recovery

    calls: list[str] = []

    async def faust_seek(*args: object) -> None:
        calls.append("faust seek")

    monkeypatch.setattr(Recovery, "_seek_offsets", faust_seek)
    monkeypatch.setattr(
        faust_recovery,
        "bulk_catch_up_standbys",
        AsyncMock(side_effect=lambda *args: calls.append("standby bulk")),
    )
    monkeypatch.setattr(
        faust_recovery,
        "bulk_recover",
        AsyncMock(side_effect=lambda *args: calls.append("active bulk")),
    )
    install({"bootstrap_servers": "127.0.0.1:1"})
    recovery = SimpleNamespace(active_offsets=Counter(), standby_offsets=Counter())
    tps = {TP(TOPIC, 0)}
    await Recovery._seek_offsets(recovery, None, tps, recovery.standby_offsets, "standby")  # type: ignore[arg-type]
    await Recovery._seek_offsets(recovery, None, tps, recovery.active_offsets, "active")  # type: ignore[arg-type]
    assert calls == ["standby bulk", "faust seek", "active bulk", "faust seek"]


def test_recovery_service_has_the_standby_state_the_bulk_reader_reads():
    recovery = Recovery(faust.App("t-recovery-standby-attrs"), MagicMock())
    assert isinstance(recovery.standby_offsets, Counter)
    assert isinstance(recovery.standby_highwaters, Counter)
    recovery.standby_highwaters[TP(TOPIC, 0)] = 9
    recovery.standby_offsets[TP(TOPIC, 0)] = 4
    assert recovery.standby_remaining_total() == 5
