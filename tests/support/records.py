"""Outbound Ometria records as the outbox carries them, for delivery and pusher tests."""

from __future__ import annotations

from typing import Any


def contact(record_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "@type": "contact",
        "@collection": "loyalty",
        "id": record_id,
        "customer_id": record_id,
        "email": f"{record_id}@example.com",
        "properties": properties,
    }
