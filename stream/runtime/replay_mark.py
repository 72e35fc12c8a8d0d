"""The replay mark: what the last `replay` left in the control topic for the workers to obey.

stream.ops.replay writes it; the worker reads it at start-up (the campaigns it holds back,
the contact version generation, the state reset) and backfill reads its generation. See
stream.ops.replay for what a replay does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from pydantic import AwareDatetime, Field, NonNegativeInt, ValidationError

from stream.runtime import control
from stream.runtime.reading import topic_ends
from stream.settings import Settings

REPLAY = b"replay"


class _ReplayBody(control.ControlBody):
    at: AwareDatetime
    source: str = Field("earliest", alias="from")
    start: dict[int, NonNegativeInt]
    until: dict[int, NonNegativeInt]
    reset: str | None = None
    # Absent from marks written before contact version generations: those are generation 0.
    generation: NonNegativeInt = 0


@dataclass(frozen=True, slots=True)
class ReplayMark:
    """A replay as the workers need to know it (kept in the control topic)."""

    at: datetime
    start: dict[int, int]  # input partition -> the offset folding starts again from
    until: dict[int, int]  # input partition -> its end when the replay ran
    reset: str | None = None  # the state reset's id, when the table is rebuilt
    source: str = field(default="earliest")
    generation: int = 0  # of the contact versions mapped since (see contact_generation)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "at": self.at.isoformat(),
                "from": self.source,
                "start": {str(p): o for p, o in self.start.items()},
                "until": {str(p): o for p, o in self.until.items()},
                "reset": self.reset,
                "generation": self.generation,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> ReplayMark | None:
        """The mark a control record holds (None: no replay ran).

        Raises:
            control.UnreadableControlRecord: the record is malformed.
        """
        if raw is None:
            return None
        try:
            body = _ReplayBody.model_validate_json(raw)
        except ValidationError as exc:
            raise control.unreadable(REPLAY, exc) from None
        return cls(
            at=body.at,
            start=body.start,
            until=body.until,
            reset=body.reset,
            source=body.source,
            generation=body.generation,
        )

    def records(self) -> int:
        """How many input records the workers fold again."""
        return sum(max(0, end - self.start.get(p, end)) for p, end in self.until.items())

    def fits(self, ends: Mapping[int, int]) -> bool:
        """Whether the mark can have been taken of an input topic whose partitions end at `ends`
        now: offsets only grow, so a mark past an end was taken of another topic."""
        return all(p in ends and until <= ends[p] for p, until in self.until.items())


async def last_replay(settings: Settings, records: control.ControlRecords) -> ReplayMark | None:
    """This deployment's last replay (None: none ran).

    The unscoped mark, written before marks named the deployment, may be another deployment's.
    It is taken only when it fits this deployment's input topic: one that fits covers only
    records already in the topic, never a later one, so it holds back no new campaign (and its
    reset, if any, makes the workers rebuild their local table files from the changelog once).

    Raises:
        control.UnreadableControlRecord: the record is malformed.
    """
    mark = ReplayMark.from_bytes(records.get(REPLAY))
    if mark is None or not records.unscoped(REPLAY):
        return mark
    return mark if mark.fits(await topic_ends(settings, settings.topics.events)) else None


def contact_generation(previous: ReplayMark | None, *, reset_state: bool) -> int:
    """The contact version generation after a replay: a new one when the table is rebuilt."""
    generation = previous.generation if previous is not None else 0
    return generation + 1 if reset_state else generation


def generation_of(raw: bytes | None) -> int | None:
    """The contact version generation a replay record holds, read from an otherwise unreadable
    one too; 0 when no replay ran, None when none can be read (the caller decides)."""
    try:
        mark = ReplayMark.from_bytes(raw)
    except control.UnreadableControlRecord:
        try:
            value = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            return None
        found = value.get("generation", 0) if isinstance(value, dict) else None
        usable = isinstance(found, int) and not isinstance(found, bool) and found >= 0
        return found if usable else None
    return mark.generation if mark is not None else 0


async def current_mark(settings: Settings) -> ReplayMark | None:
    """The last replay's mark, from the control topic (None: never replayed)."""
    return ReplayMark.from_bytes((await control.read(settings)).get(REPLAY))
