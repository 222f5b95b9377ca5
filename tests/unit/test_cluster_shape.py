"""How many brokers and instances a local system has, what each process is called and where it listens."""
import json

import pytest

from deploy.stack import ShapeChanged, Stack
from shared.settings import Settings


@pytest.fixture(autouse=True)
def no_stack_environment(monkeypatch):
    """Whatever the test stack's fixtures left in the environment, these read only what they pass."""
    for field in Settings.model_fields.values():
        if field.alias:
            monkeypatch.delenv(field.alias, raising=False)


def settings(tmp_path, **values) -> Settings:
    return Settings(env="test", state_dir=tmp_path, **values)


def test_one_broker_and_one_instance_keep_the_plain_names_and_ports(tmp_path):
    stack = Stack(settings(tmp_path))

    assert [b.name for b in stack.brokers] == ["kafka"]
    assert [s.name for s in stack.services] == ["projector", "validator", "redeemer", "ingest"]
    assert stack.settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert stack.settings.replication_factor == stack.settings.min_insync_replicas == 1


def test_a_cluster_numbers_every_process_and_gives_each_instance_its_own_ports(tmp_path):
    stack = Stack(settings(tmp_path, brokers=3, instances=2))

    assert [b.name for b in stack.brokers] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [s.name for s in stack.services if s.kind == "ingest"] == ["ingest-1", "ingest-2"]
    assert [s.settings.gateway_port for s in stack.services if s.kind == "ingest"] == [8000, 8010]
    assert [s.settings.redeemer_port for s in stack.services if s.kind == "redeemer"] == [8003, 8013]
    assert stack.settings.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"


@pytest.mark.parametrize(("brokers", "replicas", "in_sync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)])
def test_topics_are_replicated_on_up_to_three_brokers_and_may_lose_one(tmp_path, brokers, replicas, in_sync):
    chosen = settings(tmp_path, brokers=brokers)

    assert (chosen.replication_factor, chosen.min_insync_replicas) == (replicas, in_sync)


def test_later_commands_find_the_shape_up_recorded_unless_told_otherwise(tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps({"brokers": 3, "instances": 2}))

    assert (settings(tmp_path).brokers, settings(tmp_path).instances) == (3, 2)
    assert settings(tmp_path, instances=1).instances == 1


def test_a_service_started_with_an_instances_environment_reads_back_the_same_settings(tmp_path):
    instance = settings(tmp_path, brokers=3, instances=2, coupon_secret="s" * 40).for_instance(2)

    again = Settings(**instance.as_environment())

    assert again.gateway_port == 8010 and again.validator_port == 8011
    assert again.kafka_bootstrap_servers == instance.kafka_bootstrap_servers
    assert again.coupon_secret.get_secret_value() == "s" * 40 and again.state_dir == tmp_path


def test_up_refuses_another_broker_count_over_a_clusters_log(tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps({"brokers": 1, "instances": 1}))
    (tmp_path / "kafka" / "data").mkdir(parents=True)
    (tmp_path / "kafka" / "data" / "meta.properties").write_text("node.id=1\n")

    with pytest.raises(ShapeChanged, match="1-broker cluster"):
        Stack(settings(tmp_path, brokers=3)).up(echo=lambda _: None)
