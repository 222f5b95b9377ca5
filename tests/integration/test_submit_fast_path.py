"""The gateway answers submissions past FastAPI's per-request machinery (services/ingest/fast_path.py):
every answer must be the one FastAPI's own route gives. The running gateway (fast path on) is compared
with the same app built in this process with the fast path taken out, request by request."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from prometheus_client import REGISTRY

from services.ingest.app import create_app
from services.ingest.fast_path import SubmitEventFastPath
from tests.helpers import habit_event, new_user

pytestmark = pytest.mark.integration

# What differs between two answers to the same request by design.
INCIDENTAL_HEADERS = {"date", "server", "content-length"}


@pytest.fixture(scope="module")
async def without_fast_path(settings):
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not SubmitEventFastPath]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
                                     base_url="http://gateway", timeout=15) as client:
            yield client


def comparable(response: httpx.Response) -> tuple:
    body = response.json()
    if "event_id" in body:  # each side's own event
        body["event_id"] = "<id>"
    headers = {k: v for k, v in response.headers.items() if k not in INCIDENTAL_HEADERS}
    for name in ("x-ratelimit-reset", "retry-after"):  # seconds from now, a second apart at most
        headers.pop(name, None)
    return response.status_code, body, headers


def requests_for(user: str, token, nonce: str) -> list[tuple[str, dict]]:
    """(what, httpx request arguments): a well-formed submission, its retry and every way to get one wrong."""
    good = habit_event(nonce=nonce)
    auth = token(user)
    return [
        ("accepted", {"json": good, "headers": auth}),
        ("a retry", {"json": good, "headers": auth}),
        ("the nonce with another body", {"json": {**good, "payload": {"habit_id": "h2"}}, "headers": auth}),
        ("no token", {"json": habit_event()}),
        ("a bad token before a good one", {"json": habit_event(), "headers": [
            ("Authorization", "Bearer not-a-token"), ("Authorization", auth["Authorization"])]}),
        ("a merchant's token", {"json": habit_event(), "headers": token(user, "merchant")}),
        ("another scheme", {"json": habit_event(), "headers": {"Authorization": auth["Authorization"].replace(
            "Bearer", "Basic")}}),
        ("not JSON", {"content": b"{not json", "headers": {**auth, "Content-Type": "application/json"}}),
        ("NaN in the payload", {"content": b'{"event_type": "habit_completed", "event_time": "%s", "nonce": "n0nce-'
                                b'nan-1", "payload": {"x": NaN}}' % good["event_time"].encode(),
                                "headers": {**auth, "Content-Type": "application/json"}}),
        ("a form", {"data": {"event_type": "habit_completed"}, "headers": auth}),
        ("JSON as text/plain", {"content": httpx.Request("POST", "/", json=habit_event()).content,
                                "headers": {**auth, "Content-Type": "text/plain"}}),
        ("fields missing", {"json": {"event_type": "habit_completed"}, "headers": auth}),
        ("an unknown event type", {"json": habit_event(event_type="mined_bitcoin"), "headers": auth}),
        ("a stale event", {"json": habit_event(at=datetime.now(timezone.utc) - timedelta(days=3)), "headers": auth}),
        ("an array", {"json": [habit_event()], "headers": auth}),
    ]


async def test_every_submission_is_answered_as_fastapi_answers_it(gateway, without_fast_path, token):
    fast_user, slow_user = new_user(), new_user()
    fast = requests_for(fast_user, token, nonce="fastpath-" + fast_user[-12:])
    slow = requests_for(slow_user, token, nonce="fastpath-" + slow_user[-12:])
    for (what, fast_request), (_, slow_request) in zip(fast, slow):
        answered = await gateway.post("/v1/events", **fast_request)
        expected = await without_fast_path.post("/v1/events", **slow_request)
        assert comparable(answered) == comparable(expected), what
    assert [comparable(await gateway.post("/v1/events", **r))[0] for _, r in fast[:3]] == [200, 200, 422]


async def test_a_retry_is_the_same_submission_whichever_path_answered_the_first(gateway, without_fast_path, token):
    """Both paths must read a body to the same event: a number JSON allows past 64 bits, say, read as
    a float by one and an integer by the other, would make the retry a reuse of its nonce."""
    user = new_user()
    body = habit_event(payload={"habit_id": "h1", "count": 18446744073709551617})
    first = await gateway.post("/v1/events", json=body, headers=token(user))
    retry = await without_fast_path.post("/v1/events", json=body, headers=token(user))
    assert (first.status_code, retry.status_code) == (202, 200), retry.text
    assert retry.json()["event_id"] == first.json()["event_id"]


def requests_counted(status: str) -> float:
    return REGISTRY.get_sample_value("ingest_http_requests_total",
                                     {"method": "POST", "route": "/v1/events", "status": status}) or 0.0


async def test_a_fast_submission_is_counted_under_its_route(settings, token):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            before = requests_counted("202")
            response = await client.post("/v1/events", json=habit_event(), headers=token(new_user()))
            assert response.status_code == 202, response.text
            assert requests_counted("202") == before + 1
