"""Opaque cursors for paged lists: the (time, id) of the last item a page showed."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from services.ingest.problems import Problem


def encode(at: datetime, item_id: UUID) -> str:
    raw = json.dumps([at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
        return datetime.fromisoformat(at), UUID(item_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Problem(400, "bad-cursor", "The cursor is not one this API gave out.") from exc
