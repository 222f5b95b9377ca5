"""The guide's "Test Admin UI": /points-admin in a real Chromium, against the running system."""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone

import pytest
from playwright.async_api import async_playwright, expect

from tests.helpers import decided_event, eventually, fund, habit_event, held_event, new_user, produce, spaced

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
async def browser():
    async with async_playwright() as playwright:
        # Root in a container has no user namespaces for Chromium's sandbox.
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser, gateway):
    context = await browser.new_context(base_url=str(gateway.base_url))
    page = await context.new_page()
    page.problems = []  # script errors and refused resources (a CSP violation is reported as a console error)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    yield page
    await context.close()


async def sign_in(page, headers: dict) -> None:
    await page.goto("/points-admin")
    await page.fill("#token", headers["Authorization"].removeprefix("Bearer "))
    await page.click("#sign-in-button")


async def test_an_admin_sees_held_events_and_approves_and_rejects_them(page, gateway, token, db):
    admin = token("console-admin@example.com", "admin")
    user = new_user()
    approved, rejected = [await held_event(gateway, token(user), at) for at in spaced(2)]

    await sign_in(page, admin)
    await expect(page.locator("#who")).to_have_text("console-admin@example.com")
    await page.fill("#queue-user", user)
    await page.press("#queue-user", "Enter")
    rows = page.locator("#review-queue tbody tr")
    await expect(rows).to_have_count(2)
    first = page.locator(f'tr[data-event-id="{approved}"]')
    await expect(first).to_contain_text(user)
    await expect(first).to_contain_text("habit_completed")

    await first.locator("input").fill("device checked by phone")
    await first.get_by_role("button", name="Approve").click()
    await expect(first).to_have_count(0)
    await expect(page.locator("#status")).to_contain_text(f"Approved event {approved}")
    second = page.locator(f'tr[data-event-id="{rejected}"]')
    await second.get_by_role("button", name="Reject").click()
    await expect(second).to_have_count(0)
    await expect(page.locator("#queue-empty")).to_be_visible()

    async def verdicts():
        rows = await db.fetch("SELECT id::text, validation_status, validated_by, review_note FROM points_events "
                              "WHERE id = ANY($1::uuid[])", [approved, rejected])
        found = {r["id"]: r for r in rows}
        done = found[approved]["validation_status"] == "validated" and found[rejected]["validation_status"] == "rejected"
        return found if done else None

    found = await eventually(verdicts)
    assert found[approved]["validated_by"] == "console-admin@example.com"
    assert found[approved]["review_note"] == "device checked by phone"
    assert found[rejected]["validated_by"] == "console-admin@example.com"
    assert page.problems == []


async def test_fraud_alerts_show_with_their_severity_and_the_charts_are_drawn(page, gateway, token):
    user = new_user()
    headers = token(user)
    at = datetime.now(timezone.utc)
    await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    rapid = await gateway.post("/v1/events", json=habit_event(at=at), headers=headers)
    assert (await decided_event(gateway, headers, rapid.json()["event_id"]))["validation_status"] == "rejected"

    await sign_in(page, token("console-admin@example.com", "admin"))
    await page.select_option("#severity", "high")
    # The same body twice is also a duplicate payload: look for the rapid-fire row among the user's.
    alert = page.locator("#fraud-insights tbody tr", has_text=user).filter(has_text="rapid fire events")
    await expect(alert).to_have_count(1)
    await expect(alert.locator(".badge")).to_have_text("high")
    await expect(alert.locator(".badge")).to_have_class("badge severity-high")
    # The unfiltered list may still be on screen a moment: wait for the filtered one, then read it.
    await expect(page.locator("#fraud-insights .badge:not(.severity-high)")).to_have_count(0)
    badges = await page.locator("#fraud-insights .badge").all_text_contents()
    assert badges and set(badges) == {"high"}

    # The charts are SVG bars, one per series and hour with anything in it.
    await expect(page.locator('#decisions-chart rect[data-series="rejected"]').first).to_be_attached()
    await expect(page.locator('#decisions-chart rect[data-series="validated"]').first).to_be_attached()
    await expect(page.locator('#insights-chart rect[data-series="high"]').first).to_be_attached()
    await expect(page.locator("#decisions-legend li")).to_have_count(4)
    assert page.problems == []


async def test_a_token_without_the_admin_role_is_turned_away(page, token):
    await sign_in(page, token(new_user()))
    await expect(page.locator("#sign-in-error")).to_contain_text("refused")
    await expect(page.locator("#console")).to_be_hidden()


async def test_the_console_page_forbids_foreign_scripts_and_framing(gateway):
    response = await gateway.get("/points-admin")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    script = await gateway.get("/points-admin/static/console.js")
    assert script.status_code == 200 and "frame-ancestors 'none'" in script.headers["content-security-policy"]


async def test_an_admin_looks_up_a_users_ledger_and_awards_points_that_name_them(page, gateway, token, db):
    user = new_user()
    headers = token(user)
    event = await gateway.post("/v1/events", json=habit_event(), headers=headers)
    await decided_event(gateway, headers, event.json()["event_id"])

    await sign_in(page, token("console-admin@example.com", "admin"))
    await page.fill("#lookup-user", user)
    await page.click("#lookup")
    await expect(page.locator(f'#user-history tr[data-event-id="{event.json()["event_id"]}"]')).to_contain_text(
        "habit_completed")

    answers = []

    async def lose_the_first_answer(route):
        response = await route.fetch()  # the gateway takes the award ...
        answers.append(response.status)
        if len(answers) == 1:
            await route.abort()  # ... but its answer never reaches the browser
        else:
            await route.fulfill(response=response)

    await page.route("**/v1/admin/awards", lose_the_first_answer)
    await page.fill("#award-points", "25")
    await page.fill("#award-reason", "goodwill after an outage")
    await page.click("#award")
    await expect(page.locator("#status")).to_contain_text("Could not award points")
    await page.click("#award")  # the admin tries again, as anyone would
    await expect(page.locator("#status")).to_contain_text(f"Awarded 25 points to {user}")
    assert answers == [201, 201]

    async def credited():
        return (await gateway.get("/v1/me/points", headers=headers)).json()["available_points"] >= 25

    await eventually(credited)
    # The retry carried the same Idempotency-Key: one award in the ledger, not two.
    assert await db.fetchval("SELECT count(*) FROM points_events WHERE user_id = $1 AND event_type = 'admin_award'",
                             user) == 1
    await page.click("#lookup")
    award = page.locator("#user-history tbody tr", has_text="admin_award")
    await expect(award).to_contain_text("console-admin@example.com")
    await expect(award).to_contain_text("25")
    # The aborted request is the one console error expected here.
    assert [p for p in page.problems if "ERR_FAILED" not in p] == []


async def key(page, name: str) -> None:
    """A key pressed with no field focused, as a reviewer's shortcut would be."""
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.keyboard.press(name)


async def test_a_queue_of_a_thousand_pages_groups_by_user_and_is_worked_through_from_the_keyboard(
        page, gateway, token, settings, db):
    """The guide's reviewer after a burst of farmed accounts: 1,000 held events of 40 users, one reason."""
    from shared import topics
    from shared.envelope import to_record
    from shared.events import EventDecided
    from shared.signing import signer_from

    farm_reason = f"farmed_{uuid.uuid4().hex[:8]}"
    farm = [new_user() for _ in range(40)]
    now = datetime.now(timezone.utc)
    signer = signer_from(settings)
    held = [EventDecided(event_id=uuid.uuid4(), user_id=farm[i % 40], event_type="habit_completed", event_time=now,
                         points_delta=10, proof_type="none", validation_status="pending_review", trust_score=40,
                         reasons=(farm_reason,), rule_set="test", validated_by="validator", decided_at=now)
            for i in range(1000)]
    await produce(settings, [(topics.LEDGER, signer.sign(to_record(e, key=e.user_id, source="/tests"))) for e in held])

    async def projected():
        return await db.fetchval("SELECT count(*) FROM points_events WHERE $1 = ANY(reasons)", farm_reason) == 1000

    await eventually(projected, timeout=60)
    reviewed, bulk = new_user(), new_user()
    for_keys = [await held_event(gateway, token(reviewed), at) for at in spaced(2)]
    for_bulk = [await held_event(gateway, token(bulk), at) for at in spaced(2)]

    await sign_in(page, token("console-admin@example.com", "admin"))
    await page.fill("#queue-reason", farm_reason)
    await page.press("#queue-reason", "Enter")
    events = page.locator("#review-queue tbody tr")
    await expect(events).to_have_count(50)
    await expect(page.locator("#queue-page")).to_have_text("Page 1")
    groups = page.locator("#queue-users tbody tr")
    await expect(groups).to_have_count(20)
    await expect(groups.first.locator("td").nth(1)).to_have_text("25")
    first_page = await events.first.get_attribute("data-event-id")
    await key(page, "n")
    await expect(page.locator("#queue-page")).to_have_text("Page 2")
    await expect(events).to_have_count(50)
    await expect(events.first).not_to_have_attribute("data-event-id", first_page)
    if shots := os.environ.get("POINTS_SCREENSHOTS"):
        await page.set_viewport_size({"width": 1400, "height": 900})
        await page.locator("#review").screenshot(path=f"{shots}/console-review-queue.png")

    # One user's held events, worked through from the keyboard: approve the first, reject the next.
    await page.fill("#queue-reason", "")
    await page.fill("#queue-user", reviewed)
    await page.press("#queue-user", "Enter")
    await expect(events).to_have_count(2)
    await expect(events.first).to_have_class("selected")
    await key(page, "a")
    await expect(page.locator("#status")).to_contain_text(f"Approved event {for_keys[0]}")
    await expect(events).to_have_count(1)
    await key(page, "r")
    await expect(page.locator("#status")).to_contain_text(f"Rejected event {for_keys[1]}")

    # Every held event of another user, with one click in the grouped table.
    await page.fill("#queue-user", bulk)
    await page.press("#queue-user", "Enter")
    await expect(groups).to_have_count(1)
    await groups.first.get_by_role("button", name="Approve all").click()
    await expect(page.locator("#status")).to_contain_text(f"Approved 2 held events of {bulk}")

    async def decided():
        rows = await db.fetch("SELECT id::text, validation_status, validated_by FROM points_events "
                              "WHERE id = ANY($1::uuid[])", for_keys + for_bulk)
        found = {r["id"]: (r["validation_status"], r["validated_by"]) for r in rows}
        return found if "pending_review" not in {s for s, _ in found.values()} else None

    found = await eventually(decided)
    admin = "console-admin@example.com"
    assert found == {for_keys[0]: ("validated", admin), for_keys[1]: ("rejected", admin),
                     for_bulk[0]: ("validated", admin), for_bulk[1]: ("validated", admin)}
    assert page.problems == []


async def test_an_admin_takes_points_back_and_what_the_balance_cannot_cover_is_said_to_be_owed(
        page, gateway, token, db):
    admin = token("console-admin@example.com", "admin")
    user = new_user()
    headers = token(user)
    await fund(gateway, admin, headers, user, 40)

    await sign_in(page, admin)
    await page.fill("#lookup-user", user)
    await page.click("#lookup")
    await expect(page.locator("#user-details")).to_be_visible()
    page.on("dialog", lambda dialog: dialog.accept())  # "Take 100 points back from ...?"
    await page.fill("#clawback-points", "100")
    await page.fill("#clawback-reason", "promo abuse found later")
    await page.click("#clawback")

    await expect(page.locator("#status")).to_contain_text(
        f"Took 40 points back from {user}; 60 more could not be covered and are owed.")

    async def clawed():
        return await db.fetchrow("SELECT points_delta, validated_by FROM points_events WHERE user_id = $1 "
                                 "AND event_type = 'clawback'", user)

    row = await eventually(clawed)
    assert (row["points_delta"], row["validated_by"]) == (-40, "console-admin@example.com")
    assert page.problems == []
