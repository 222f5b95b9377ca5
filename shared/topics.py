"""Kafka topics: their names (the public ones are the contract for downstream consumers, see
docs/asyncapi.json) and what each keeps, so that every topic is created with its intended config."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SUBMITTED = "points.events.submitted"
LEDGER = "points.ledger"
FRAUD = "points.fraud"
COMMANDS = "points.commands"
# Admin verdicts and holds for the validator, keyed by user.
REVIEWS = "points.reviews"
COUPONS = "points.coupons"
REPLIES = "points.replies"
# The redeemer's per-user state, compacted; written in the same transaction as its outputs.
REDEEMER_STATE = "points.redeemer.state"
# Records a service could not trust or read, with the reason; never consumed automatically.
DEAD_LETTER = "points.deadletter"

ALL = (SUBMITTED, LEDGER, FRAUD, REVIEWS, COMMANDS, COUPONS, REPLIES, REDEEMER_STATE, DEAD_LETTER)

# The validator's faust app: its id names its consumer group and prefixes the topics faust derives.
VALIDATOR_APP = "points-validator"
# Re-keying hops, so accounts per device and per IP are counted by one owner each.
VALIDATOR_BY_DEVICE = "points-validator-by-device"
VALIDATOR_BY_IP = "points-validator-by-ip"
VALIDATOR_BY_USER = "points-validator-by-user"
# faust names a table's changelog "<app id>-<table>-changelog".
VALIDATOR_TABLES = ("user-state", "device-accounts", "ip-accounts")
# faust's partition assignor elects its leader through this one-partition topic.
VALIDATOR_ASSIGNOR = f"{VALIDATOR_APP}-__assignor-__leader"


def changelog(table: str) -> str:
    return f"{VALIDATOR_APP}-{table}-changelog"


Keeps = Literal["everything", "latest", "a_week"]
A_WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    # everything: the log is the truth, nothing expires. latest: compacted, the newest record per key
    # is the state. a_week: in-flight hand-offs between a service's own stages, re-derivable.
    keeps: Keeps
    # None: the deployment's partition count (every keyed topic has the same, so a user's records
    # share a partition number across topics).
    partitions: int | None = None

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        by_kind = {
            "everything": {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
            "latest": {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"},
            "a_week": {"cleanup.policy": "delete", "retention.ms": str(A_WEEK_MS), "retention.bytes": "-1"},
        }
        return {**by_kind[self.keeps], "min.insync.replicas": str(min_insync_replicas),
                "unclean.leader.election.enable": "false"}


SPECS: tuple[TopicSpec, ...] = (
    # Facts: rebuilding the read models, a new downstream consumer and the redeemer's balances all
    # start from offset 0 of these, so none may expire.
    TopicSpec(SUBMITTED, "everything"),
    TopicSpec(LEDGER, "everything"),
    TopicSpec(FRAUD, "everything"),
    TopicSpec(REVIEWS, "everything"),
    TopicSpec(COMMANDS, "everything"),
    TopicSpec(COUPONS, "everything"),
    TopicSpec(REPLIES, "everything"),
    TopicSpec(DEAD_LETTER, "everything"),
    TopicSpec(REDEEMER_STATE, "latest"),
    *(TopicSpec(changelog(table), "latest") for table in VALIDATOR_TABLES),
    TopicSpec(VALIDATOR_BY_DEVICE, "a_week"),
    TopicSpec(VALIDATOR_BY_IP, "a_week"),
    TopicSpec(VALIDATOR_BY_USER, "a_week"),
    TopicSpec(VALIDATOR_ASSIGNOR, "a_week", partitions=1),
)
