"""The cluster's admin client, and the partitions of an existing topic: what every other
Kafka-facing module asks of the cluster first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.admin import AIOKafkaAdminClient

from stream.runtime.kafka_auth import client_options
from stream.settings import Settings


@asynccontextmanager
async def admin_client(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client for the configured cluster, closed afterwards."""
    admin = AIOKafkaAdminClient(
        **client_options(settings.kafka), client_id=f"{settings.app_id}-admin"
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partition_ids(settings: Settings, topic: str) -> list[int]:
    """The partitions of a topic (none if it does not exist)."""
    async with admin_client(settings) as admin:
        if topic not in set(await admin.list_topics()):
            return []
        (described,) = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
