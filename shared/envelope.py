"""CloudEvents 1.0 binary mode on Kafka: attributes in `ce_*` headers, the event as JSON value."""
from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary, to_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.events import EVENT_TYPES, Event, utcnow


class _PydanticJSON(JSONFormat):
    """Leaves the value as bytes: pydantic writes and reads our events' JSON in one pass each, where
    the json module and then the model (or the model and then the json module) took two."""

    def read_data(self, body: bytes, datacontenttype: str | None) -> bytes:
        return body


_FORMAT = _PydanticJSON()


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
    try:
        header_map = {name: bytes(raw) for name, raw in headers}
        cloud_event = from_binary(KafkaMessage(headers=header_map, key=key, value=value), _FORMAT)
        from shared.commands import COMMAND_TYPES

        model = EVENT_TYPES.get(cloud_event.get_type()) or COMMAND_TYPES[cloud_event.get_type()]
        return model.model_validate_json(cloud_event.get_data())
    except Exception as exc:  # any defect in a foreign record is the same outcome: unreadable
        raise UnreadableRecord(str(exc)) from exc
