"""The contact versions one deployment reads back from a versions topic others share."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from stream.runtime.contact_versions import APP_HEADER, DeliveredVersions, version_record


def record(key: bytes, value: int, app: str | None = None) -> ConsumerRecord[bytes, bytes]:
    headers = [] if app is None else [(APP_HEADER, app.encode())]
    return ConsumerRecord("versions", 0, 0, 0, 0, key, str(value).encode(), None, 0, 0, headers)


def own(app: str, contact: str, value: int) -> ConsumerRecord[bytes, bytes]:
    key, headers = version_record(app, contact)
    assert headers == [(APP_HEADER, app.encode())]
    return record(key, value, app)


def test_a_deployment_reads_its_own_versions_and_never_anothers():
    found = DeliveredVersions("shop-a", ceiling=1000)
    found.add([own("shop-a", "42", 7), own("shop-b", "42", 900), own("shop-a", "7", 3)])
    assert found.newest() == {"42": 7, "7": 3}


def test_an_unscoped_version_counts_until_the_deployment_stores_its_own():
    found = DeliveredVersions("shop-a", ceiling=1000)
    found.add([record(b"42", 50), record(b"7", 9), own("shop-a", "42", 60)])
    assert found.newest() == {"42": 60, "7": 9}


def test_an_unscoped_version_past_the_end_of_the_deployments_input_is_anothers():
    found = DeliveredVersions("shop-a", ceiling=100)
    found.add([record(b"42", 100), record(b"7", 99)])
    assert found.newest() == {"7": 99}


def test_a_contact_id_with_a_slash_reads_back_whole():
    found = DeliveredVersions("shop-a", ceiling=10)
    found.add([own("shop-a", "eu/42", 5)])
    assert found.newest() == {"eu/42": 5}
