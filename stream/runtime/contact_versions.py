"""The contact versions topic's records: one deployment's, told apart from the others' sharing it.

A record is keyed `<app id>/<contact id>` and carries the app id in a header, so deployments
that share the topic (with overlapping customer ids) never read one another's versions. Records
without the header were written before versions named the deployment; a deployment reads them
for the contacts it has no record of its own for, so that an upgrade never lets an older contact
through. Such a record may be another deployment's: versions are offsets of the deployment's own
input topic, so one beyond that topic's end cannot be this deployment's and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aiokafka.structs import ConsumerRecord

from stream.domain.records import Version, parse_version

APP_HEADER = "loyalty.app_id"


def version_record(app_id: str, contact_id: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The key and headers under which `app_id` stores the version of `contact_id`."""
    return app_id.encode() + b"/" + contact_id.encode(), [(APP_HEADER, app_id.encode())]


class DeliveredVersions:
    """Reads one partition of the versions topic into one deployment's newest versions.

    As after compaction, a contact's latest record counts and a tombstone forgets it.
    `ceiling` is the largest end offset of the deployment's input partitions: no version of
    its own reaches it.
    """

    def __init__(self, app_id: str, ceiling: int) -> None:
        self._app = app_id.encode()
        self._prefix = self._app + b"/"
        self._ceiling = ceiling
        self._own: dict[str, Version] = {}
        self._unscoped: dict[str, Version] = {}
        # (scope, contact id) -> its latest record while that is not a version
        self._unreadable: dict[tuple[bool, str], ConsumerRecord[bytes, bytes]] = {}

    def add(self, records: Iterable[ConsumerRecord[bytes, bytes]]) -> None:
        """Take the records in topic order."""
        for record in records:
            if record.key is None:
                continue
            app = next((value for name, value in record.headers if name == APP_HEADER), None)
            if app is None:
                known, contact_id = self._unscoped, record.key.decode(errors="replace")
            elif app == self._app and record.key.startswith(self._prefix):
                known = self._own
                contact_id = record.key[len(self._prefix) :].decode(errors="replace")
            else:
                continue
            scope = (app is None, contact_id)
            known.pop(contact_id, None)
            self._unreadable.pop(scope, None)
            if record.value is None:
                continue
            try:
                version = parse_version(record.value)
            except ValueError:
                self._unreadable[scope] = record
                continue
            if app is None and version.offset >= self._ceiling:
                continue  # beyond this deployment's input: another deployment's
            known[contact_id] = version

    def unreadable(self) -> list[ConsumerRecord[bytes, bytes]]:
        """The latest records of contacts whose value is not a version (their newest delivery
        is unknown)."""
        return list(self._unreadable.values())

    def newest(self) -> dict[str, Version]:
        """contact id -> newest version delivered: the deployment's own, else the unscoped one."""
        return self._unscoped | self._own


class KnownVersions(Protocol):
    """One outbox partition's newest delivered versions, as the pusher consults and keeps them."""

    def get(self, contact_id: str) -> Version | None: ...

    def remember(self, contact_id: str, version: Version) -> None: ...

    def forget(self, contact_id: str) -> None: ...

    def close(self) -> None: ...


class MemoryVersions:
    """KnownVersions in a dict: for a pusher without an on-disk store (STREAM_STORE=memory://);
    it grows with the partition's customers and is read again whole on every assignment."""

    def __init__(self, newest: dict[str, Version]) -> None:
        self._newest = newest

    def get(self, contact_id: str) -> Version | None:
        return self._newest.get(contact_id)

    def remember(self, contact_id: str, version: Version) -> None:
        self._newest[contact_id] = max(version, self._newest.get(contact_id, version))

    def forget(self, contact_id: str) -> None:
        self._newest.pop(contact_id, None)

    def close(self) -> None:
        self._newest = {}
