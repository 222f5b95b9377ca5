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

# The validator's per-user state (compacted), written in the same transaction as its decisions.
VALIDATOR_STATE = "points.validator.state"
# Which accounts were seen on which device or IP (compacted, one record per pair): every validator
# instance reads all of it, so accounts per device and per IP are counted across users.
VALIDATOR_SIGHTINGS = "points.validator.sightings"

ALL = (SUBMITTED, LEDGER, FRAUD, REVIEWS, COMMANDS, COUPONS, REPLIES, REDEEMER_STATE, VALIDATOR_STATE,
       VALIDATOR_SIGHTINGS, DEAD_LETTER)


Keeps = Literal["everything", "latest"]
STATE_SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str
    # everything: the log is the truth, nothing expires. latest: compacted, the newest record per
    # key is the state.
    keeps: Keeps
    # None: the deployment's partition count (every keyed topic has the same, so a user's records
    # share a partition number across topics).
    partitions: int | None = None

    def configs(self, min_insync_replicas: int) -> dict[str, str]:
        by_kind = {
            "everything": {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"},
            # The cleaner compacts closed segments only: with Kafka's 1 GiB segments a state topic
            # grew to gigabytes of superseded values, all read back on every restore.
            "latest": {"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1",
                       "segment.bytes": str(STATE_SEGMENT_BYTES)},
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
    # State: only the newest record per key matters; the services restore from these on start.
    TopicSpec(REDEEMER_STATE, "latest"),
    TopicSpec(VALIDATOR_STATE, "latest"),
    TopicSpec(VALIDATOR_SIGHTINGS, "latest"),
)
