"""The developer's commands that need no broker: telling this run's sample events apart."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from stream.ops.dev_commands import of_this_run


def test_send_sample_show_sandbox_finds_the_campaign_events_its_own_run_fired():
    from stream.domain.events import parse_event
    from stream.domain.profile import fold
    from stream.domain.triggers import TriggerConfig, fire
    from stream.ops.samples import sample_events

    now = datetime.now(UTC)

    def fired(run: str) -> list[dict[str, object]]:
        profiles: dict[str, object] = {}
        records = []
        for raw in sample_events(run, now):
            event = parse_event(orjson.dumps(raw))
            before = profiles.get(event.customer.id)
            after = fold(before, event).profile
            profiles[event.customer.id] = after
            records += fire(event, before, after, TriggerConfig(), now).records
        return records

    mine, other = fired("aaaa1111"), fired("bbbb2222")
    assert mine, "the sample story fires campaign events"
    assert of_this_run(mine + other, "sample-aaaa1111-") == mine
