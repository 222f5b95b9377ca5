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
    """Reads every answer from now on (no consumer group: each gateway sees them all), but only while
    someone here waits for one.

    Its fetches wait at most REPLY_FETCH_MAX_WAIT_MS at the broker, a hundred a second, answers or
    not: on an idle stack that was most of the broker's CPU and a third of its own, and under a load of
    app events (which have no answers) the same. So between waits the partitions are paused; the
    first wait after a rest reads on from the end of the topic, the answers meanwhile having been
    for other gateways' commands.
    """

    def __init__(self, bootstrap: str, keyring: Keyring, *, timeout: float):
        """`timeout`: how long the first wait after a rest may take to find the end of the topic."""
        self.keyring, self.timeout = keyring, timeout
        # Without a group, a subscription is every partition of the topic, from its end on. The
        # fetch's wait is short because waking after a rest asks for the topic's end on this
        # connection, where the broker answers it only after a fetch still waiting there.
        self.consumer = AIOKafkaConsumer(topics.REPLIES, bootstrap_servers=bootstrap, group_id=None,
                                         enable_auto_commit=False, auto_offset_reset="latest",
                                         isolation_level="read_committed", fetch_max_wait_ms=REPLY_FETCH_MAX_WAIT_MS)
        self.waiting: dict[UUID, asyncio.Future] = {}
        self._resting = False
        self._waking = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.started = False

    async def start(self) -> None:
        await self.consumer.start()
        while not self.consumer.assignment():
            await asyncio.sleep(0.05)
        for tp in self.consumer.assignment():  # fixes each start position now, so no answer after start() is missed
            await self.consumer.position(tp)
        self._rest()
        self._task = asyncio.create_task(self._read())
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()

    async def expect(self, command_id: UUID) -> None:
        """Register before publishing, so an answer that comes back at once is not missed. Raises
        KafkaError or TimeoutError when the broker cannot say where the answers end."""
        self.waiting.setdefault(command_id, asyncio.get_running_loop().create_future())
        try:
            async with self._waking:
                if self._resting:
                    await self._wake()
        except BaseException:
            self.forget(command_id)
            raise

    async def _wake(self) -> None:
        # Before any command of this wait is published: its answer lies past this end.
        partitions = self.consumer.assignment()
        async with asyncio.timeout(self.timeout):
            await self.consumer.seek_to_end(*partitions)
            for tp in partitions:
                await self.consumer.position(tp)
        self.consumer.resume(*partitions)
        self._resting = False

    def forget(self, command_id: UUID) -> None:
        self.waiting.pop(command_id, None)
        if not self.waiting:
            self._rest()

    def _rest(self) -> None:
        self.consumer.pause(*self.consumer.assignment())
        self._resting = True

    async def wait(self, command_id: UUID, timeout: float) -> CommandAnswered | None:
        """The answer to a command `expect`ed before it was published; None if none came in time."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.waiting[command_id]), timeout)
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
