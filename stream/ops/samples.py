"""Demo loyalty events for `send-sample`: a short, realistic story for three customers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

# The first two customers have emails and become Ometria contacts; the third is a guest
# without an email, whose profile is kept but who is not sent to Ometria.
SAMPLE_CUSTOMERS = (
    {"id": "7294851236742", "email": "sarah.martinez@example.com", "first_name": "Sarah",
     "last_name": "Martinez"},
    {"id": "8051146358856", "email": "james.okafor@example.com", "first_name": "James",
     "last_name": "Okafor"},
    {"id": "9193366159432"},
)  # fmt: skip


def sample_events(run: str, now: datetime) -> list[dict[str, Any]]:
    """The demo story; `run` makes event ids unique so every run sends new events."""
    sarah, james, guest = SAMPLE_CUSTOMERS
    story: list[tuple[dict[str, Any], str, dict[str, Any]]] = [
        (sarah, "customer.enrolled", {
            "loyalty_status": "member", "referral_code": "kL9mR4xP8vN2sQ7tY",
            "referral_url": "https://example.com?referral_code=kL9mR4xP8vN2sQ7tY",
            "date_of_birth": "03-15"}),
        (james, "customer.enrolled", {"loyalty_status": "member"}),
        (guest, "customer.enrolled", {"loyalty_status": "guest"}),
        (sarah, "points.earned", {"points": 150, "action": "placed_order"}),
        (james, "points.earned", {"points": 40, "action": "custom_action_name",
                                  "credits": "2.40"}),
        (guest, "points.earned", {"points": 10}),
        (sarah, "tier.changed", {"previous_tier": "Silver", "tier": "Gold",
                                 "next_tier": "Platinum"}),
        (sarah, "points.redeemed", {
            "redemption_id": "24186741", "code": "REDEEM-b3fb35f5407e", "points": 100,
            "reward": {"id": "594155", "name": "$10 off coupon",
                       "reward_type": "fixed_amount", "value": "10.00"}}),
        (sarah, "reward.used", {"redemption_id": "24186741", "code": "REDEEM-b3fb35f5407e",
                                "order_id": "1001"}),
        (james, "referral.completed", {"referred_customer_id": "9193366159432"}),
        (james, "birthday.updated", {"date_of_birth": "11-30"}),
    ]  # fmt: skip
    events = []
    for step, (customer, event_type, data) in enumerate(story):
        events.append(
            {
                "event_id": f"sample-{run}-{step:02d}",
                "type": event_type,
                "occurred_at": (now + timedelta(milliseconds=step)).isoformat(),
                "source": "rivo",
                "customer": customer,
                "data": data,
            }
        )
    return events
