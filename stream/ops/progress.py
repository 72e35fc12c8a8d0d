"""Progress of a long command: a rich bar on a terminal, one plain line per interval elsewhere.

Kubernetes Job logs are not terminals: a bar redrawn in place would be one endless line there,
so they get `label: done/total (pct) rate/s, ETA …` every `every` seconds and once at the end.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from stream.domain.durations import duration_text


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("?/s" if speed is None else f"{speed:,.0f}/s")


class ProgressView:
    """`update(done, total, note)` as often as convenient; it draws at its own pace."""

    def __init__(
        self, label: str, *, unit: str, out: TextIO | None = None, every: float = 10.0
    ) -> None:
        self._label = label
        self._unit = unit
        self._out = out or sys.stdout
        self._every = every
        self._started = time.monotonic()
        self._last_line = self._started
        self._state = (0, 0, "")
        self._bar: Progress | None = None
        if self._out.isatty():
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TaskProgressColumn(),
                _Rate(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(file=self._out),
            )
            self._task = self._bar.add_task(label, total=None, note="")

    def __enter__(self) -> ProgressView:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        else:
            self._line(done=True)

    def update(self, done: int, total: int, note: str = "") -> None:
        self._state = (done, total, note)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, note=note)
        elif time.monotonic() - self._last_line >= self._every:
            self._line(done=False)

    def _line(self, *, done: bool) -> None:
        now = time.monotonic()
        self._last_line = now
        count, total, note = self._state
        elapsed = max(now - self._started, 1e-9)
        rate = count / elapsed
        share = f"{100 * count / total:.0f}%" if total else "-"
        if done:
            when = f"in {duration_text(timedelta(seconds=elapsed))}"
        elif rate > 0 and total:
            when = f"ETA {duration_text(timedelta(seconds=(total - count) / rate))}"
        else:
            when = "ETA ?"
        tail = f", {note}" if note else ""
        print(
            f"{self._label}: {count:,}/{total:,} {self._unit} ({share}), {rate:,.0f}/s, "
            f"{when}{tail}",
            file=self._out,
            flush=True,
        )
