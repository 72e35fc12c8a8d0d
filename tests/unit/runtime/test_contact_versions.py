"""The contact versions one deployment reads back from a versions topic others share."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from stream.domain.records import Version, encode_version
from stream.runtime.contact_versions import APP_HEADER, DeliveredVersions, version_record


def record(
    key: bytes, value: int | Version | bytes | None, app: str | None = None
) -> ConsumerRecord[bytes, bytes]:
    headers = [] if app is None else [(APP_HEADER, app.encode())]
    raw = (
        value
        if value is None or isinstance(value, bytes)
        else encode_version(value if isinstance(value, Version) else Version(0, value))
    )
    return ConsumerRecord("versions", 0, 0, 0, 0, key, raw, None, 0, 0, headers)


def versions(**found: int | Version) -> dict[str, Version]:
    return {k: v if isinstance(v, Version) else Version(0, v) for k, v in found.items()}


def own(
    app: str, contact: str, value: int | Version | bytes | None
) -> ConsumerRecord[bytes, bytes]:
    key, headers = version_record(app, contact)
    assert headers == [(APP_HEADER, app.encode())]
    return record(key, value, app)


def test_a_deployment_reads_its_own_versions_and_never_anothers():
    found = DeliveredVersions("shop-a", ceiling=1000)
    found.add([own("shop-a", "42", 7), own("shop-b", "42", 900), own("shop-a", "7", 3)])
    assert found.newest() == versions(**{"42": 7, "7": 3})


def test_an_unscoped_version_counts_until_the_deployment_stores_its_own():
    found = DeliveredVersions("shop-a", ceiling=1000)
    found.add([record(b"42", 50), record(b"7", 9), own("shop-a", "42", 60)])
    assert found.newest() == versions(**{"42": 60, "7": 9})


def test_an_unscoped_version_past_the_end_of_the_deployments_input_is_anothers():
    found = DeliveredVersions("shop-a", ceiling=100)
    found.add([record(b"42", 100), record(b"7", 99)])
    assert found.newest() == versions(**{"7": 99})


def test_a_contact_id_with_a_slash_reads_back_whole():
    found = DeliveredVersions("shop-a", ceiling=10)
    found.add([own("shop-a", "eu/42", 5)])
    assert found.newest() == versions(**{"eu/42": 5})


def test_a_later_generations_version_is_read_whatever_its_offset():
    found = DeliveredVersions("shop-a", ceiling=10)
    found.add([own("shop-a", "42", Version(2, 3))])
    assert found.newest() == {"42": Version(2, 3)}


def test_a_tombstone_forgets_a_version_and_an_unreadable_one_until_a_later_record():
    found = DeliveredVersions("shop-a", ceiling=100)
    found.add(
        [
            own("shop-a", "1", 5),
            own("shop-a", "1", None),
            own("shop-a", "2", b"not a version"),
            own("shop-a", "3", b"garbage"),
            own("shop-a", "3", 7),
        ]
    )
    assert found.newest() == versions(**{"3": 7})
    assert [r.key for r in found.unreadable()] == [version_record("shop-a", "2")[0]]
