"""Dead letters: a record no service could trust or read, kept byte for byte with the reason."""
from __future__ import annotations

from shared.envelope import Record

REASON = "points-dlq-reason"
SOURCE = "points-dlq-source"
SERVICE = "points-dlq-service"


def dead_letter(key: bytes | None, value: bytes, headers, *, reason: str, topic: str, partition: int,
                offset: int, service: str) -> Record:
    kept = [(name, bytes(raw)) for name, raw in headers if not name.startswith("points-dlq-")]
    return Record(
        key=key or b"",
        value=value,
        headers=[*kept, (REASON, reason.encode()), (SOURCE, f"{topic}/{partition}/{offset}".encode()),
                 (SERVICE, service.encode())],
    )
