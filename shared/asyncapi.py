"""The AsyncAPI 3 description of the public topics, generated from the event models themselves."""
from __future__ import annotations

import json

from shared import topics
from shared.commands import COMMAND_TYPES
from shared.events import EVENT_TYPES

TOPIC_MESSAGES = {
    topics.SUBMITTED: ["dev.points.event.submitted.v1"],
    topics.LEDGER: ["dev.points.event.decided.v1"],
    topics.FRAUD: ["dev.points.fraud.insight_raised.v1"],
    topics.REVIEWS: ["dev.points.command.review_event.v1", "dev.points.command.hold_event.v1"],
    topics.COMMANDS: ["dev.points.command.redeem_coupon.v1", "dev.points.command.use_coupon.v1",
                      "dev.points.command.revoke_coupon.v1", "dev.points.command.claw_back.v1"],
    topics.COUPONS: ["dev.points.coupon.issued.v1", "dev.points.coupon.used.v1", "dev.points.coupon.revoked.v1"],
    topics.REPLIES: ["dev.points.command.answered.v1"],
    # The redeemer's and the validator's compacted state: internal, its format may change between releases.
    topics.REDEEMER_STATE: [],
    topics.VALIDATOR_STATE: [],
    topics.VALIDATOR_SIGHTINGS: [],
    # Dead letters are the original bytes and headers plus points-dlq-* headers, of any type above.
    topics.DEAD_LETTER: [],
}

# What a consumer verifies (shared/signing.py), said here so it can without reading our code.
SIGNED_BYTES = (
    "Ed25519 over the concatenation of length-prefixed parts, each part preceded by its length as a 4-byte "
    "big-endian unsigned integer: first the record key (empty when there is none); then every header named "
    "ce_* or content-type, as the bytes name + '=' + value, sorted by name and then value (bytewise); last "
    "the record value. The public keys, by key id, are served as a JWKS (OKP, Ed25519) at "
    "GET /.well-known/points-signing-keys on the gateway.")

_CE_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode: attributes travel as ce_* Kafka headers. Every record is "
                   "signed: points-signature and points-key-id.",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type", "points-signature",
                 "points-key-id"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "Unique per record"},
        "ce_source": {"type": "string", "description": "The publishing service, e.g. /points/ingest"},
        "ce_type": {"type": "string"},
        "ce_subject": {"type": "string", "description": "The user id (also the record key)"},
        "ce_time": {"type": "string", "format": "date-time"},
        "content-type": {"type": "string", "const": "application/json"},
        "points-signature": {"type": "string", "contentEncoding": "base64url",
                             "description": "Unpadded base64url of the Ed25519 signature. " + SIGNED_BYTES},
        "points-key-id": {"type": "string", "description": "Which signing key made the signature (the JWKS kid)"},
        "points-mac": {"type": "string", "contentEncoding": "base64url",
                       "description": "For the points services only: an HMAC-SHA256 of the same bytes under a key "
                                      "derived from the signing key's seed, which they check instead of the "
                                      "signature because it costs a tenth as much. Others ignore it and check "
                                      "points-signature."},
    },
}


def _message_id(ce_type: str) -> str:
    return ce_type.removeprefix("dev.points.").replace(".", "_")


def document() -> dict:
    messages, channels, operations = {}, {}, {}
    for ce_type, model in {**EVENT_TYPES, **COMMAND_TYPES}.items():
        messages[_message_id(ce_type)] = {
            "name": model.__name__,
            "title": ce_type,
            "summary": (model.__doc__ or "").strip(),
            "contentType": "application/json",
            "headers": {**_CE_HEADERS, "properties": {**_CE_HEADERS["properties"],
                                                      "ce_type": {"type": "string", "const": ce_type}}},
            "payload": model.model_json_schema(),
            "bindings": {"kafka": {"key": {"type": "string", "description": "user id"}}},
        }
    for topic, ce_types in TOPIC_MESSAGES.items():
        channel_id = topic.replace(".", "_")
        channels[channel_id] = {
            "address": topic,
            "description": f"Kafka topic {topic}, keyed by user id.",
            "messages": {_message_id(t): {"$ref": f"#/components/messages/{_message_id(t)}"} for t in ce_types},
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Downstream consumers read {topic}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Points ledger topics", "version": "1.0.0",
                 "description": "Every record is a CloudEvent in binary mode, keyed by user id."},
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"
