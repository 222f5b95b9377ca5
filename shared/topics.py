"""Kafka topic names: the public contract for downstream consumers (see docs/asyncapi.yaml)."""

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
COMPACTED = frozenset({REDEEMER_STATE})
