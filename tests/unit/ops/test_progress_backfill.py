"""The plain progress lines a Job log gets."""

from __future__ import annotations

import io

from stream.ops.progress import ProgressView


def test_without_a_terminal_progress_is_one_plain_line_per_interval_and_one_at_the_end():
    out = io.StringIO()  # not a terminal
    with ProgressView("backfill t", unit="records", out=out, every=0.0) as view:
        view.update(5, 20, "2 contacts queued")
        view.update(20, 20, "9 contacts queued")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("backfill t: 5/20 records (25%), ")
    assert "ETA " in lines[0]
    assert lines[-1].startswith("backfill t: 20/20 records (100%), ")
    assert lines[-1].endswith("9 contacts queued")
    assert len(lines) == 3


def test_without_a_terminal_no_line_is_printed_before_the_interval():
    out = io.StringIO()
    with ProgressView("b", unit="records", out=out, every=3600.0) as view:
        for n in range(100):
            view.update(n, 100)
    assert len(out.getvalue().splitlines()) == 1
