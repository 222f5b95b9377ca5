"""CloudEvents 1.0 binary mode on Kafka: attributes in `ce_*` headers, the event as JSON value."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from cloudevents.core.bindings.kafka import to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.commands import COMMAND_TYPES
from shared.events import EVENT_TYPES, Event, utcnow


# The value is already JSON (pydantic writes an event in one pass); the SDK's format passes bytes on.
_FORMAT = JSONFormat()
_MODELS: dict[str, type[Event]] = {**EVENT_TYPES, **COMMAND_TYPES}


class UnreadableRecord(ValueError):
    """A record that is not one of our CloudEvents; it must not stall a partition."""


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def to_record(event: Event, *, key: str, source: str) -> Record:
    cloud_event = CloudEvent(
        attributes={
            "id": str(uuid4()),
            "source": source,
            "type": event.ce_type,
            "subject": key,
            "time": utcnow(),
            "datacontenttype": "application/json",
        },
        data=event.__pydantic_serializer__.to_json(event),
    )
    message = to_binary(cloud_event, _FORMAT, key_mapper=lambda _: key)
    return Record(
        key=key.encode(),
        value=message.value,
        headers=sorted(message.headers.items()),
    )


def from_record(key: bytes | None, value: bytes, headers) -> Event:
    """The event a record carries, by its `ce_type`. Our services read only records whose MAC or
    signature has been checked, so written by `to_record` through the CloudEvents SDK: reading
    needs the type and the value, and the SDK's parse of every attribute (its `ce_time` through
    dateutil) was two thirds of a read, paid four times per event."""
    try:
        found = dict(headers)
        if found.get("ce_specversion") != b"1.0":
            raise UnreadableRecord("not a CloudEvents 1.0 record")
        kind = bytes(found.get("ce_type") or b"").decode()
        model = _MODELS.get(kind)
        if model is None:
            raise UnreadableRecord(f"no event or command of type {kind!r}")
        return model.model_validate_json(value)
    except UnreadableRecord:
        raise
    except Exception as exc:  # any defect in a foreign record is the same outcome: unreadable
        raise UnreadableRecord(str(exc)) from exc
