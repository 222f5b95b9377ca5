"""Request and response bodies of the public HTTP API (see API.md)."""
from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.events import ValidationStatus


def _storable(value: str) -> str:
    """What PostgreSQL text and Kafka's UTF-8 cannot hold (NUL, a lone surrogate), refused here,
    before anything is published or stored."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogate code points)") from exc
    return value


def _storable_tree(value: Any) -> Any:
    if isinstance(value, str):
        _storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable_tree(item)
    elif isinstance(value, list):
        for item in value:
            _storable_tree(item)
    return value


Text = Annotated[str, AfterValidator(_storable)]


class Attestation(BaseModel):
    type: Literal["app_attest", "play_integrity"]
    token: Text = Field(min_length=1, max_length=16384,
                       description="app_attest: base64 assertion over the event's nonce; "
                                   "play_integrity: the integrity token requested with the event's nonce")
    key_id: Text | None = Field(None, max_length=128, description="app_attest: the registered key's id (base64)")


class SubmitEvent(BaseModel):
    """What an app says a user did. Unknown fields (a client-sent `points`, say) are ignored."""

    model_config = ConfigDict(extra="ignore")

    event_type: Text = Field(min_length=1, max_length=64)
    event_time: AwareDatetime
    nonce: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    payload: dict[str, Any] = Field(default_factory=dict)
    device_id: Text | None = Field(None, max_length=256)
    attestation: Attestation | None = None

    @field_validator("payload")
    @classmethod
    def _payload_storable(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return _storable_tree(payload)


class EventAccepted(BaseModel):
    event_id: UUID
    status: Literal["pending"] = "pending"
    duplicate: bool = False


class EventView(BaseModel):
    event_id: UUID
    event_type: str
    event_time: AwareDatetime
    validation_status: ValidationStatus
    points_delta: int
    trust_score: int | None
    reasons: list[str]


class Balance(BaseModel):
    user_id: str
    available_points: int
    pending_points: int
    lifetime_earned: int
    lifetime_spent: int


class HistoryItem(BaseModel):
    event_id: UUID
    event_type: str
    event_time: AwareDatetime
    points_delta: int
    validation_status: ValidationStatus
    trust_score: int | None


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_cursor: str | None
