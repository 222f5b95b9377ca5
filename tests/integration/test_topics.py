"""Every topic keeps what it promises: the log does not expire, state is compacted, drift is repaired or refused."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared import topics
from shared.topic_admin import Layout, TopicDrift, describe, ensure_topics
from shared.topics import SPECS, TopicSpec

pytestmark = pytest.mark.integration

FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


async def broker_view(settings, names):
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return await describe(admin, list(names))
    finally:
        await admin.close()


async def alter(settings, name: str, configs: dict[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs)])
    finally:
        await admin.close()


def value(found, name: str) -> str | None:
    return found.configs[name][0]


async def test_the_log_keeps_every_record_and_state_topics_are_compacted(settings):
    found = await broker_view(settings, [spec.name for spec in SPECS])

    assert set(found) == {spec.name for spec in SPECS}
    for name in (topics.SUBMITTED, topics.LEDGER, topics.FRAUD, topics.REVIEWS, topics.COMMANDS, topics.COUPONS,
                 topics.REPLIES, topics.DEAD_LETTER):
        assert {key: value(found[name], key) for key in FOREVER} == FOREVER, name
    for name in (topics.REDEEMER_STATE, topics.VALIDATOR_STATE, topics.VALIDATOR_SIGHTINGS):
        assert value(found[name], "cleanup.policy") == "compact", name
    for spec in SPECS:
        topic = found[spec.name]
        assert value(topic, "min.insync.replicas") == str(settings.min_insync_replicas), spec.name
        assert value(topic, "unclean.leader.election.enable") == "false", spec.name
        assert topic.replication_factor == settings.replication_factor, spec.name
        assert topic.partitions == (spec.partitions or settings.topic_partitions), spec.name


async def test_points_up_puts_a_drifted_retention_back_and_keeps_the_operators_other_settings(settings):
    # An operator (or Kafka's default) left the ledger expiring after a day, and tuned its segments.
    await alter(settings, topics.LEDGER, {**FOREVER, "retention.ms": "86400000", "segment.ms": "3600000",
                                          "min.insync.replicas": str(settings.min_insync_replicas),
                                          "unclean.leader.election.enable": "false"})
    drifted = (await broker_view(settings, [topics.LEDGER]))[topics.LEDGER]
    assert value(drifted, "retention.ms") == "86400000"

    result = subprocess.run([sys.executable, "-m", "deploy.cli", "up"], capture_output=True, text=True,
                            env=os.environ, timeout=300)

    assert result.returncode == 0, result.stderr
    assert f"repaired {topics.LEDGER}: retention.ms was 86400000, now -1" in " ".join(result.stderr.split())
    repaired = (await broker_view(settings, [topics.LEDGER]))[topics.LEDGER]
    assert value(repaired, "retention.ms") == "-1"
    assert value(repaired, "segment.ms") == "3600000" and repaired.configs["segment.ms"][1]


async def test_a_topic_with_the_wrong_partition_count_is_refused_by_name_and_left_alone(settings):
    name = f"points-test-drift-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
        layout = Layout(partitions=6, replication_factor=settings.replication_factor,
                        min_insync_replicas=settings.min_insync_replicas)

        with pytest.raises(TopicDrift) as refused:
            await ensure_topics(settings.kafka_bootstrap_servers, layout, specs=(TopicSpec(name, "everything"),))

        assert name in str(refused.value) and "2 partitions" in str(refused.value) and "needs 6" in str(refused.value)
        after = (await describe(admin, [name]))[name]
        assert after.partitions == 2
        assert value(after, "retention.ms") != "-1"  # refused means untouched, not half-repaired
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_missing_topics_are_created_with_their_intended_config(settings):
    name = f"points-test-new-{uuid.uuid4().hex[:8]}"
    layout = Layout(partitions=3, replication_factor=settings.replication_factor,
                    min_insync_replicas=settings.min_insync_replicas)
    try:
        report = await ensure_topics(settings.kafka_bootstrap_servers, layout, specs=(TopicSpec(name, "latest"),))
        again = await ensure_topics(settings.kafka_bootstrap_servers, layout, specs=(TopicSpec(name, "latest"),))

        assert report.created == [name]
        assert again.created == [] and again.fixed == {}
        made = (await broker_view(settings, [name]))[name]
        assert made.partitions == 3 and value(made, "cleanup.policy") == "compact"
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        await admin.delete_topics([name])
        await admin.close()
