import json

from shared import topics
from shared.asyncapi import document, render
from shared.settings import REPO_ROOT


def test_the_committed_asyncapi_document_matches_the_event_models():
    # Regenerate with: .venv/bin/points asyncapi > docs/asyncapi.json
    assert (REPO_ROOT / "docs" / "asyncapi.json").read_text() == render()


def test_every_public_topic_is_described():
    addresses = {channel["address"] for channel in document()["channels"].values()}
    assert addresses == set(topics.ALL)
    assert json.loads(render())["asyncapi"].startswith("3.")


def test_a_consumer_can_verify_a_record_from_what_the_document_says():
    """Rebuild the signed bytes as the document describes them, without shared/signing.py's helper."""
    import base64
    from datetime import datetime, timezone
    from uuid import uuid4

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from shared.envelope import to_record
    from shared.events import EventSubmitted
    from shared.signing import Signer

    headers_doc = document()["components"]["messages"]["event_submitted_v1"]["headers"]
    assert {"points-signature", "points-key-id"} <= set(headers_doc["required"])
    signer = Signer.from_seed("k-test", bytes(range(32)))
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    record = signer.sign(to_record(EventSubmitted(
        event_id=uuid4(), user_id="alice", event_type="habit_completed", event_time=now, nonce="n" * 8, points=10,
        received_at=now, body_hash="h"), key="alice", source="/points/ingest"))

    headers = {name: bytes(raw) for name, raw in record.headers}
    covered = sorted((name.encode(), raw) for name, raw in record.headers
                     if name.startswith("ce_") or name == "content-type")
    parts = [record.key or b""] + [name + b"=" + bytes(raw) for name, raw in covered] + [record.value]
    message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
    signature = base64.urlsafe_b64decode(headers["points-signature"] + b"=" * (-len(headers["points-signature"]) % 4))
    jwk = next(k for k in signer_keys(signer) if k["kid"] == headers["points-key-id"].decode())
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4)))

    public.verify(signature, message)  # raises if the document and the code disagree


def signer_keys(signer) -> list[dict]:
    from shared.signing import Keyring

    return Keyring({signer.key_id: signer.public_bytes()}).jwks()["keys"]
