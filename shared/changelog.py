"""Reading a compacted state topic to its end: how a service gets back what it last committed.

The redeemer and the validator keep their per-user state in a compacted topic, written in the same
Kafka transaction as their outputs and consumed offsets; on an assignment, or after an aborted
transaction, they read the partitions they own back from it (committed records only).
"""
from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_to_end(bootstrap: str, topic: str, partitions: set[int]) -> dict[int, dict[bytes, bytes]]:
    """The latest committed value of every key, per partition."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                              isolation_level="read_committed", group_id=None)
    await reader.start()
    state: dict[int, dict[bytes, bytes]] = {partition: {} for partition in partitions}
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return state
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            for tp, messages in (await reader.getmany(*remaining, timeout_ms=500)).items():
                for message in messages:
                    if message.value is None:
                        state[tp.partition].pop(message.key, None)
                    else:
                        state[tp.partition][message.key] = message.value
            # With read_committed the end is the last stable offset; transaction markers may sit
            # just before it, so the position (not the last record seen) says when we are done.
            remaining = {tp for tp in remaining if await reader.position(tp) < ends[tp]}
    finally:
        await reader.stop()
    return state
