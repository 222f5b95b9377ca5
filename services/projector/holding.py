"""Submissions held back for a moment, so that most are never written as pending at all. Pure: no I/O.

A submission's decision follows it within a few hundred milliseconds. Written at once, a submission
is a pending row that its decision then rewrites, and checking its signature and reading it cost the
projector as much as the decision did: most of a second row's work for a state nobody saw. Held for
`seconds`, a submission whose decision has been stored meanwhile is dropped unread (its decision's row
says everything), and only the ones still undecided are written as pending.

The partition's stored offset stays at its first held submission, so a projector that stops (or
loses the partition) reads the held ones again; a pending row written after its decision changes
nothing (the store inserts a submission only where no row is).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition


@dataclass(frozen=True)
class _Held:
    message: Any
    event_id: str | None
    since: float


def _event_id(value: bytes | None) -> str | None:
    """The event id the record says it carries, unchecked: it only lets a decision stand in for it.
    An unreadable or forged record is checked (and set aside) when its moment is over."""
    try:
        return str(orjson.loads(value)["event_id"])
    except Exception:
        return None


class Holding:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self._held: dict[TopicPartition, deque[_Held]] = {}
        self._read_to: dict[TopicPartition, int] = {}
        # event id -> when its decision was read: for submissions held now, and for ones read after
        # their decision (a projector catching up reads the topics at different paces)
        self._decided: dict[str, float] = {}
        self._pruned_at = 0.0

    def hold(self, tp: TopicPartition, messages: list, now: float) -> None:
        queue = self._held.setdefault(tp, deque())
        queue.extend(_Held(message, _event_id(message.value), now) for message in messages)
        if messages:
            self._read_to[tp] = messages[-1].offset + 1

    def decided(self, event_ids: list[str], now: float) -> None:
        for event_id in event_ids:
            self._decided[event_id] = now

    def due(self, now: float) -> dict[TopicPartition, list]:
        """The held submissions whose moment is over and whose decision has not come, in order: to be
        written as pending. The ones decided meanwhile are dropped."""
        released: dict[TopicPartition, list] = {}
        for tp, queue in self._held.items():
            while queue and now - queue[0].since >= self.seconds:
                held = queue.popleft()
                if held.event_id not in self._decided:
                    released.setdefault(tp, []).append(held.message)
        if now - self._pruned_at >= self.seconds:
            self._decided = {e: at for e, at in self._decided.items() if at >= now - 2 * self.seconds}
            self._pruned_at = now
        return released

    def any_due(self, now: float) -> bool:
        return any(queue and now - queue[0].since >= self.seconds for queue in self._held.values())

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Where each holding partition is read again from: its first submission still held, or past
        everything read."""
        return {(tp.topic, tp.partition): queue[0].message.offset if queue else self._read_to[tp]
                for tp, queue in self._held.items() if tp in self._read_to}

    def forget(self, partitions) -> None:
        """The partitions are read again from their stored offsets (or by another instance)."""
        for tp in partitions:
            self._held.pop(tp, None)
            self._read_to.pop(tp, None)

    def forget_all(self) -> None:
        self.forget(list(self._held))
