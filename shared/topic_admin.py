"""Creating every topic with its intended config, and finding topics whose config drifted.

What can be put right in place (retention, cleanup policy, min.insync.replicas, unclean leader
election) is altered back, keeping any other setting an operator gave the topic. What cannot
(the partition count, which decides where a user's records go, and the replication factor, which
needs a reassignment) is refused, naming the topic, before any service reads from it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.topics import SPECS, TopicSpec

log = logging.getLogger("points.topics")

TOPIC_ALREADY_EXISTS = 36
# DescribeConfigs' config_source for a value set on the topic itself (not a broker default).
SET_ON_TOPIC = 1


class TopicDrift(RuntimeError):
    """A topic exists in a shape the system cannot safely use or repair by itself."""


@dataclass(frozen=True)
class Layout:
    """How this deployment wants its topics: from settings, never hard-coded."""

    partitions: int
    replication_factor: int
    min_insync_replicas: int

    def partitions_of(self, spec: TopicSpec) -> int:
        return spec.partitions or self.partitions


@dataclass(frozen=True)
class Found:
    partitions: int
    replication_factor: int
    # config name -> (value, set on the topic itself)
    configs: dict[str, tuple[str | None, bool]]


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    # topic -> config name -> (found, now)
    fixed: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)


def _check(response, what: str, tolerated: Iterable[int] = ()) -> set[str]:
    """Raise on an error not tolerated; the names that had a tolerated one."""
    obj = response.to_object()
    had = set()
    for entry in obj.get("topic_errors") or obj.get("resources") or []:
        code = entry.get("error_code", 0)
        name = entry.get("topic") or entry.get("resource_name")
        if code and code not in tolerated:
            raise RuntimeError(f"{what} {name}: error {code} {entry.get('error_message') or ''}".strip())
        if code:
            had.add(name)
    return had


async def describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, Found]:
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    shapes = {t["topic"]: t["partitions"] for t in await admin.describe_topics(present) if not t["error_code"]}
    configs: dict[str, dict[str, tuple[str | None, bool]]] = {}
    for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in present]):
        for resource in response.to_object()["resources"]:
            configs[resource["resource_name"]] = {
                entry["config_names"]: (entry["config_value"], entry.get("config_source") == SET_ON_TOPIC)
                for entry in resource["config_entries"]}
    return {name: Found(len(shapes[name]), len(shapes[name][0]["replicas"]) if shapes[name] else 0,
                        configs.get(name, {}))
            for name in present if name in shapes}


def drift(spec: TopicSpec, found: Found, layout: Layout) -> tuple[list[str], dict[str, tuple[str | None, str]]]:
    """What cannot be repaired (as sentences) and what can (config -> (found, wanted)). Pure."""
    refusals = []
    if found.partitions != layout.partitions_of(spec):
        refusals.append(f"topic {spec.name} has {found.partitions} partitions, this deployment needs "
                        f"{layout.partitions_of(spec)} (POINTS_TOPIC_PARTITIONS); a user's records would land "
                        "in another partition, so it is not changed automatically")
    if found.replication_factor != layout.replication_factor:
        refusals.append(f"topic {spec.name} has replication factor {found.replication_factor}, this deployment "
                        f"wants {layout.replication_factor} (POINTS_TOPIC_REPLICATION_FACTOR); change it with "
                        "a partition reassignment (kafka-reassign-partitions)")
    repairs = {name: (found.configs.get(name, (None, False))[0], wanted)
               for name, wanted in spec.configs(layout.min_insync_replicas).items()
               if found.configs.get(name, (None, False))[0] != wanted}
    return refusals, repairs


async def ensure_topics(bootstrap: str, layout: Layout, specs: tuple[TopicSpec, ...] = SPECS,
                        echo=lambda _: None) -> Report:
    """Create what is missing, repair configs that drifted, refuse shapes that cannot be repaired."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    report = Report()
    try:
        names = [spec.name for spec in specs]
        found = await describe(admin, names)
        missing = [spec for spec in specs if spec.name not in found]
        if missing:
            echo(f"creating {len(missing)} topics")
            existed = _check(await admin.create_topics([
                NewTopic(spec.name, layout.partitions_of(spec), layout.replication_factor,
                         topic_configs=spec.configs(layout.min_insync_replicas)) for spec in missing]),
                "creating topic", tolerated=(TOPIC_ALREADY_EXISTS,))
            report.created = [spec.name for spec in missing if spec.name not in existed]
            if existed:
                # Made a moment ago by someone else (another `points up`, a client), not yet in the
                # metadata read above: its shape is checked like any other's, once it is visible.
                await wait_until_visible(admin, sorted(existed))
                found |= await describe(admin, sorted(existed))
        refusals, alterations = [], []
        for spec in specs:
            if spec.name not in found:
                continue
            cannot, can = drift(spec, found[spec.name], layout)
            refusals += cannot
            if can:
                report.fixed[spec.name] = can
                # AlterConfigs replaces a topic's whole set of its own values: keep the operator's others.
                kept = {name: value for name, (value, own) in found[spec.name].configs.items() if own}
                alterations.append(ConfigResource(ConfigResourceType.TOPIC, spec.name,
                                                  {**kept, **{name: wanted for name, (_, wanted) in can.items()}}))
        if refusals:
            raise TopicDrift("; ".join(refusals))
        if alterations:
            for response in await admin.alter_configs(alterations):
                _check(response, "altering topic")
            for topic, changes in report.fixed.items():
                for name, (before, after) in changes.items():
                    echo(f"repaired {topic}: {name} was {before}, now {after}")
        await wait_until_visible(admin, names)
    finally:
        await admin.close()
    return report


async def wait_until_visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Created topics reach every broker's metadata a moment later; consumers must see them all."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        topics = {t["topic"]: t for t in await admin.describe_topics(names)}
        ready = [n for n in names if n in topics and not topics[n]["error_code"] and topics[n]["partitions"]
                 and all(p["leader"] >= 0 for p in topics[n]["partitions"])]
        if len(ready) == len(names):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without leaders: {sorted(set(names) - set(ready))}")
        await asyncio.sleep(0.2)


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition ids the broker has for a topic (empty when it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return [] if described["error_code"] else sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def out_of_sync(bootstrap: str) -> list[str]:
    """Partitions (`topic/partition`) whose in-sync replicas are fewer than their replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(await admin.list_topics()))
        return [f"{t['topic']}/{p['partition']}" for t in described if not t["error_code"]
                for p in t["partitions"] if len(p["isr"]) < len(p["replicas"])]
    finally:
        await admin.close()


async def wait_for_topics(bootstrap: str, names: list[str], *, every: float = 2.0) -> None:
    """Block until every topic exists with a leader for each partition, saying which are missing.

    A consumer subscribed to a topic that does not exist yet is given none of its partitions until a
    metadata refresh minutes later, so services wait here rather than start without it.
    """
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await wait_until_visible(admin, names, timeout=every)
            return
        except Exception as exc:
            log.warning("points.topics.missing", extra={"detail": str(exc), "hint": "run `points init` or `points up`"})
        finally:
            await admin.close()
        await asyncio.sleep(every)
