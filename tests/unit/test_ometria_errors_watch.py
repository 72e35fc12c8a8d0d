"""Ometria's errors list is polled again and again: each entry is reported once."""

from __future__ import annotations

from stream.runtime.ometria_jobs import ErrorsWatch


def entry(n: int) -> dict:
    return {"error_message": f"bad field {n}", "error_path": f"/contacts/{n}", "id": n}


def test_only_entries_not_seen_before_are_new_whatever_their_key_order():
    watch = ErrorsWatch()
    assert watch.new([entry(1), entry(2)]) == [entry(1), entry(2)]
    reordered = dict(reversed(list(entry(2).items())))
    assert watch.new([reordered, entry(3)]) == [entry(3)]


def test_the_memory_is_bounded_and_forgets_the_oldest_entries():
    watch = ErrorsWatch(remember=2)
    watch.new([entry(1), entry(2), entry(3)])
    assert watch.new([entry(1), entry(3)]) == [entry(1)]
