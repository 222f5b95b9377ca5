"""Kafka topic names: the public contract for downstream consumers (see docs/asyncapi.yaml)."""

SUBMITTED = "points.events.submitted"
LEDGER = "points.ledger"
FRAUD = "points.fraud"

ALL = (SUBMITTED, LEDGER, FRAUD)
