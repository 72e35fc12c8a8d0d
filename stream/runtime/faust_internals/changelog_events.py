"""Changelog records as a table store's `apply_changelog_batch` reads them, decoded only when read.

The bulk recovery (stream.runtime.faust_internals.recovery) hands a store these stand-ins
instead of Faust's Events: building an Event per record is most of the cost of Faust's own path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faust.types import TP


class ChangelogMessage:
    """What a store's `apply_changelog_batch` reads of a changelog message."""

    __slots__ = ("key", "offset", "partition", "tp", "value")

    def __init__(self, tp: TP, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.tp = tp
        self.partition = tp.partition
        self.offset = offset
        self.key = key
        self.value = value


Decoder = Callable[[ChangelogMessage], Any]


class ChangelogEvent:
    """A changelog record as Faust's Event shows it to a store, decoded only when read.

    The RocksDB store reads `message` only; the memory store reads `key` and `value`.
    """

    __slots__ = ("_decode_key", "_decode_value", "message")

    def __init__(
        self, message: ChangelogMessage, decode_key: Decoder, decode_value: Decoder
    ) -> None:
        self.message = message
        self._decode_key = decode_key
        self._decode_value = decode_value

    @property
    def key(self) -> Any:
        return self._decode_key(self.message)

    @property
    def value(self) -> Any:
        return self._decode_value(self.message)


def changelog_decoders(app: Any, table: Any) -> tuple[Decoder, Decoder]:
    """Key and value decoders of the table's changelog, as Faust's conductor decodes them."""
    schema = table.changelog_topic.schema
    loads_key = app.serializers.loads_key
    loads_value = app.serializers.loads_value

    def key(message: ChangelogMessage) -> Any:
        return schema.loads_key(app, message, loads=loads_key)

    def value(message: ChangelogMessage) -> Any:
        return schema.loads_value(app, message, loads=loads_value)

    return key, value


__all__ = ["ChangelogEvent", "ChangelogMessage", "Decoder", "changelog_decoders"]
