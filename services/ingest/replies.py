"""Request/reply over Kafka: the gateway waits for the redeemer's answer to the command it sent."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.envelope import UnreadableRecord, from_record
from shared.events import CommandAnswered
from shared.signing import BadSignature, Keyring

log = logging.getLogger("points.ingest")
REPLY_FETCH_MAX_WAIT_MS = 10


class ReplyWaiter:
    """Reads every answer from now on (no consumer group: each gateway sees them all)."""

    def __init__(self, bootstrap: str, keyring: Keyring):
        self.keyring = keyring
        # Without a group, a subscription is every partition of the topic, from its end on. A commit
        # does not wake a read_committed fetch waiting at the broker: an answer waits out the
        # fetch's wait, so it is short here, where a client waits on every answer.
        self.consumer = AIOKafkaConsumer(topics.REPLIES, bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, auto_offset_reset="latest",
                                         isolation_level="read_committed", fetch_max_wait_ms=REPLY_FETCH_MAX_WAIT_MS)
        self.waiting: dict[UUID, asyncio.Future] = {}
        self._task: asyncio.Task | None = None
        self.started = False

    async def start(self) -> None:
        await self.consumer.start()
        while not self.consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in self.consumer.assignment():  # fixes each start position now, so no answer after start() is missed
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._read())
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    def expect(self, command_id: UUID) -> asyncio.Future:
        """Register before publishing, so an answer that comes back at once is not missed."""
        return self.waiting.setdefault(command_id, asyncio.get_running_loop().create_future())

    def forget(self, command_id: UUID) -> None:
        self.waiting.pop(command_id, None)

    async def wait(self, command_id: UUID, timeout: float) -> CommandAnswered | None:
        future = self.expect(command_id)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self.forget(command_id)

    async def _read(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500)
            except Exception:
                log.exception("reading answers failed; retrying")
                await asyncio.sleep(1)
                continue
            for messages in batches.values():
                for message in messages:
                    try:
                        self.keyring.verify(message.key, message.value, message.headers)
                        answer = from_record(message.key, message.value, message.headers)
                    except (BadSignature, UnreadableRecord):
                        continue  # the projector dead-letters these; a waiter just keeps waiting
                    future = self.waiting.get(getattr(answer, "command_id", None))
                    if isinstance(answer, CommandAnswered) and future is not None and not future.done():
                        future.set_result(answer)
