import pytest

from services.ingest.flags import Flags, check_write_allowed, rollout_bucket
from services.ingest.problems import Problem


def test_buckets_are_stable_and_spread_over_0_to_99():
    buckets = [rollout_bucket(f"user-{i}") for i in range(2000)]
    assert buckets == [rollout_bucket(f"user-{i}") for i in range(2000)]
    assert set(buckets) == set(range(100))


def test_a_rollout_of_p_percent_admits_about_p_percent_of_users():
    admitted = sum(rollout_bucket(f"user-{i}") < 25 for i in range(10000))
    assert 2300 < admitted < 2700


def test_a_wider_rollout_keeps_everyone_a_narrower_one_admitted():
    users = [f"user-{i}" for i in range(500)]
    narrow = {u for u in users if rollout_bucket(u) < 5}
    wide = {u for u in users if rollout_bucket(u) < 25}
    assert narrow <= wide


@pytest.mark.parametrize("flags,status", [(Flags(points_system_enabled=False), 503), (Flags(rollout_percent=0), 403)])
def test_writes_are_refused_by_the_kill_switch_and_the_rollout(flags, status):
    with pytest.raises(Problem) as refused:
        check_write_allowed(flags, "anyone")
    assert refused.value.status == status


def test_everyone_writes_when_fully_rolled_out():
    check_write_allowed(Flags(), "anyone")
