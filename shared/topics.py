"""Kafka topic names: the public contract for downstream consumers (see docs/asyncapi.yaml)."""

SUBMITTED = "points.events.submitted"
LEDGER = "points.ledger"
FRAUD = "points.fraud"
# Records a service could not trust or read, with the reason; never consumed automatically.
DEAD_LETTER = "points.deadletter"

ALL = (SUBMITTED, LEDGER, FRAUD, DEAD_LETTER)
