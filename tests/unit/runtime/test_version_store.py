"""The pusher's on-disk delivered versions: the same answers as reading the versions topic into
memory (DeliveredVersions, the reference), kept across reopening, read on from a checkpoint."""

from __future__ import annotations

from pathlib import Path

from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.domain.records import Version, encode_version
from stream.runtime.contact_versions import APP_HEADER, DeliveredVersions, version_record
from stream.runtime.version_store import Checkpoint, PartitionVersions

APP = "shop-a"
CONTACTS = ["1", "2", "3", "a/b", "é"]


def record(
    offset: int, key: bytes, value: bytes | None, app: str | None
) -> ConsumerRecord[bytes, bytes]:
    headers = [] if app is None else [(APP_HEADER, app.encode())]
    return ConsumerRecord("versions", 0, offset, 0, 0, key, value, None, 0, 0, headers)


def own(offset: int, contact: str, value: Version | bytes | None) -> ConsumerRecord[bytes, bytes]:
    key, _ = version_record(APP, contact)
    raw = encode_version(value) if isinstance(value, Version) else value
    return record(offset, key, raw, APP)


def test_versions_and_checkpoint_survive_reopening(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply([own(0, "1", Version(0, 5))], Checkpoint(1, 1000), ceiling=100)
    store.remember("2", Version(1, 3))
    store.close()
    again = PartitionVersions(tmp_path / "0", APP)
    assert again.get("1") == Version(0, 5)
    assert again.get("2") == Version(1, 3)
    assert again.checkpoint() == Checkpoint(1, 1000)
    again.close()


def test_a_new_store_has_no_checkpoint(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    assert store.checkpoint() is None
    store.close()


def test_remember_keeps_the_newer_version(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.remember("1", Version(0, 9))
    store.remember("1", Version(0, 4))
    assert store.get("1") == Version(0, 9)
    store.close()


def test_a_tail_tombstone_forgets_and_a_tail_version_replaces(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply(
        [own(0, "1", Version(0, 5)), own(1, "2", Version(0, 6))], Checkpoint(2, 0), ceiling=100
    )
    store.apply([own(2, "1", None), own(3, "2", Version(0, 2))], Checkpoint(4, 0), ceiling=100)
    assert store.get("1") is None
    assert store.get("2") == Version(0, 2)  # the topic's latest counts, as after compaction
    assert store.checkpoint() == Checkpoint(4, 0)
    store.close()


def test_legacy_versions_count_only_without_an_own_one_and_below_the_ceiling(
    tmp_path: Path,
) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply(
        [
            record(0, b"1", encode_version(Version(0, 50)), None),
            own(1, "1", Version(0, 7)),
            record(2, b"2", encode_version(Version(0, 50)), None),
            record(3, b"3", encode_version(Version(0, 500)), None),
        ],
        Checkpoint(4, 0),
        ceiling=100,
    )
    assert store.get("1") == Version(0, 7)
    assert store.get("2") == Version(0, 50)
    assert store.get("3") is None
    store.close()


def test_a_contact_whose_latest_value_is_not_a_version_is_reported_until_replaced(
    tmp_path: Path,
) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply([own(0, "1", Version(0, 1)), own(1, "1", b"junk")], Checkpoint(2, 0), 100)
    (bad,) = store.unreadable()
    assert (bad.offset, bad.value) == (1, b"junk")
    assert store.get("1") is None
    store.apply([own(2, "1", None)], Checkpoint(3, 0), ceiling=100)
    assert store.unreadable() == []
    store.close()


def test_forget_drops_own_and_legacy_versions(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply([record(0, b"1", encode_version(Version(0, 5)), None)], Checkpoint(1, 0), 100)
    store.remember("1", Version(0, 8))
    store.forget("1")
    assert store.get("1") is None
    store.close()


def test_fresh_wipes_what_was_there(tmp_path: Path) -> None:
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    store.apply([own(0, "1", Version(0, 5))], Checkpoint(1, 0), ceiling=100)
    store.close()
    store = PartitionVersions.fresh(tmp_path / "0", APP)
    assert store.get("1") is None
    assert store.checkpoint() is None
    store.close()


values = st.one_of(
    st.none(),
    st.builds(Version, st.integers(0, 2), st.integers(0, 200)).map(encode_version),
    st.just(b"not a version"),
)
records = st.tuples(st.sampled_from(CONTACTS), values, st.sampled_from([APP, "shop-b", None])).map(
    lambda t: (t[0], t[1], t[2])
)


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=40), st.integers(0, 40), st.integers(0, 250))
def test_reading_in_two_parts_through_the_store_equals_reading_the_topic_at_once(
    tmp_path_factory, sequence, split, ceiling
) -> None:
    topic = []
    for offset, (contact, value, app) in enumerate(sequence):
        key = contact.encode() if app is None else version_record(app, contact)[0]
        topic.append(record(offset, key, value, app))
    reference = DeliveredVersions(APP, ceiling)
    reference.add(topic)
    path = tmp_path_factory.mktemp("store") / "0"
    store = PartitionVersions.fresh(path, APP)
    store.apply(topic[:split], Checkpoint(min(split, len(topic)), 0), ceiling)
    store.close()
    store = PartitionVersions(path, APP)
    start = store.checkpoint()
    assert start is not None
    store.apply(topic[start.offset :], Checkpoint(len(topic), 0), ceiling)
    assert {c: v for c in CONTACTS if (v := store.get(c)) is not None} == reference.newest()
    assert sorted(u.offset for u in store.unreadable()) == sorted(
        r.offset for r in reference.unreadable()
    )
    store.close()
