"""Reading in batches big enough to be worth a transaction."""
from __future__ import annotations

import asyncio
import math

from aiokafka import AIOKafkaConsumer

# A batch smaller than this waits up to a linger for more: each transaction (and each PostgreSQL
# commit) costs the broker and the database about as much as dozens of records, so at moderate
# rates some milliseconds of waiting divide that cost among many records.
ENOUGH_RECORDS = 200
# How long a fetch waits at the broker for records. A waiting read_committed fetch is answered as
# soon as records arrive or a transaction commits, so new records do not wait it out; a partition
# sought back (a rewind after an abort) or newly assigned does, being read again only once the fetch
# in flight returns (so records that must wait are held, not sought back: shared/transactional.py),
# and so does anything else asked on the consumer's connection (a broker answers one connection's
# requests in order: shared/transactional.py asks elsewhere). 500 rather than 50 halved the idle
# stack's CPU (docs/performance.md, step 15).
FETCH_MAX_WAIT_MS = 500
# Where nobody waits on the batch (events to decide, rows to project, credits to count: a decision
# has a second): at 400 ev/s, 60 ms rather than 20 took a tenth off the validator's CPU per event and
# a fifth off the projector's and the redeemer's (docs/performance.md).
LINGER_MS = 60
# Where someone waits on the answer (a redemption's client): just long enough to gather a burst.
URGENT_LINGER_MS = 2


async def fill(consumer: AIOKafkaConsumer, batches: dict, *, max_records: int, linger_ms: int = LINGER_MS,
               urgent: frozenset[str] = frozenset(), urgent_linger_ms: int = 0) -> dict:
    """`batches` (as getmany returned them), topped up with whatever arrives within `linger_ms`
    when they hold fewer than ENOUGH_RECORDS; each partition's records stay in order. Once the batch
    holds a record of an `urgent` topic (one whose sender waits on the answer), it waits no longer
    than `urgent_linger_ms` from its start, however much of `linger_ms` is left."""
    count = sum(len(messages) for messages in batches.values())
    if count >= ENOUGH_RECORDS:
        return batches
    if not urgent:
        # getmany returns as soon as anything is there; the fetcher keeps reading while this sleeps.
        await asyncio.sleep(linger_ms / 1000)
        merge(batches, await consumer.getmany(timeout_ms=0, max_records=max_records - count))
        return batches
    loop = asyncio.get_running_loop()
    start = loop.time()
    while count < ENOUGH_RECORDS:
        waited = urgent_linger_ms if any(tp.topic in urgent for tp in batches) else linger_ms
        left_ms = waited - (loop.time() - start) * 1000
        if left_ms <= 0:
            break
        count += merge(batches, await consumer.getmany(timeout_ms=math.ceil(left_ms), max_records=max_records - count))
    return batches


def merge(batches: dict, more: dict) -> int:
    """Add what a later getmany returned to `batches`; how many records that was."""
    for tp, messages in more.items():
        batches.setdefault(tp, []).extend(messages)
    return sum(len(messages) for messages in more.values())
