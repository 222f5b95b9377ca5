"""Fault injection: steady load from many users while services are killed, paused and restarted;
then the invariants of DESIGN.md are checked against what the clients were told.

A client here behaves as the API asks of real ones: on a connection error, a timeout or a 5xx it
retries the same request (same nonce, same Idempotency-Key) until it gets an answer.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx

from deploy.stack import Stack
from services.ingest.auth import mint_dev_token
from shared.db import create_pool
from shared.guide_queries import BALANCE_DISCREPANCIES
from shared import topics
from shared.changelog import read_to_end
from shared.topic_admin import out_of_sync, partitions_of

FAULTS = ("kill-ingest", "kill-validator", "kill-redeemer", "kill-projector", "pause-projector", "pause-validator",
          "restart-kafka", "restart-postgres")


def cluster_faults(stack: Stack) -> tuple[str, ...]:
    """On a cluster: kill -9 one broker, then one instance of each service (each stays down past the
    group's session timeout, so the survivors take its partitions over); then restart every broker
    in turn."""
    if len(stack.brokers) < 2 or stack.settings.instances < 2:
        raise ValueError("the cluster faults need at least 2 brokers and 2 instances: "
                         "`points up --brokers 3 --instances 2`")
    return ("kill-kafka-2", "kill-ingest-1", "kill-validator-1", "kill-projector-2", "kill-redeemer-1", "roll-kafka")


@dataclass
class Tally:
    events_sent: int = 0
    events_rate_limited: int = 0  # refused by the per-user hourly limit (429): an answer, not a loss
    events_acked: dict[str, str] = field(default_factory=dict)  # nonce -> event id
    redemptions_acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> redemption id
    coupons_acked: set[str] = field(default_factory=set)
    awarded: dict[str, int] = field(default_factory=dict)  # spender -> points awarded (201) to spend
    retries: int = 0
    client_errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FaultRun:
    name: str
    fault_seconds: float  # from the fault to starting what it stopped (a rolling restart: all of it)
    recovery_seconds: float  # from there until every process answered ready again


@dataclass
class Report:
    faults: list[FaultRun]
    tally: Tally
    checks: dict[str, bool]
    details: dict[str, object]
    seconds: float
    shape: str = "one broker, one instance of every service"

    @property
    def passed(self) -> bool:
        return all(self.checks.values()) and not self.tally.client_errors

    def markdown(self) -> str:
        t, d = self.tally, self.details
        lines = [
            "# Fault injection report", "",
            f"Written by `points chaos` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from a real run of "
            f"{self.seconds:.0f} s against the local system (Kafka, PostgreSQL and every service as processes: "
            f"{self.shape}).", "",
            "| fault | fault lasted (s) | back to ready after (s) |", "|---|---|---|",
            *[f"| {f.name} | {f.fault_seconds:.1f} | {f.recovery_seconds:.1f} |" for f in self.faults], "",
            "| measure | value |", "|---|---|",
            f"| events sent | {t.events_sent} |",
            f"| events acknowledged (202/200) | {len(t.events_acked)} |",
            f"| events refused by the hourly rate limit (429) | {t.events_rate_limited} |",
            f"| redemptions acknowledged (201) | {len(t.coupons_acked)} |",
            f"| points awarded to spenders, coupons they hold | {sum(t.awarded.values())}, {d['spender_coupons']} |",
            f"| client retries (connection errors, timeouts, 5xx) | {t.retries} |",
            f"| acknowledged events lost | {d['lost_events']} |",
            f"| events counted twice | {d['duplicate_events']} |",
            f"| acknowledged redemptions lost | {d['lost_redemptions']} |",
            f"| coupons issued twice | {d['duplicate_coupons']} |", "",
            "| invariant | holds |", "|---|---|",
            *[f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in self.checks.items()],
        ]
        return "\n".join(lines) + "\n"


class Client:
    """Every gateway of the stack; a request that gets no answer from one is sent to the next, as a
    load balancer in front of several gateways would."""

    def __init__(self, stack: Stack, tally: Tally, deadline: float):
        self.stack, self.tally, self.deadline = stack, tally, deadline
        self.gateways = stack.gateway_urls
        self.http = httpx.AsyncClient(timeout=15)
        self._turn = 0

    def headers(self, sub: str, role: str = "user") -> dict:
        return {"Authorization": f"Bearer {mint_dev_token(self.stack.settings, sub, role, 7200)}"}

    async def persist(self, method: str, url: str, **kwargs) -> httpx.Response | None:
        """The same request until it is answered (or the run's hard deadline passes)."""
        delay = 0.3
        self._turn += 1
        gateway = self._turn
        while time.monotonic() < self.deadline:
            try:
                response = await self.http.request(method, self.gateways[gateway % len(self.gateways)] + url,
                                                   **kwargs)
                if response.status_code < 500 and not (response.status_code == 409 and
                                                        response.json().get("type", "").endswith("/request-in-flight")):
                    return response
            except httpx.HTTPError:
                pass
            self.tally.retries += 1
            gateway += 1
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 3.0)
        return None


async def submitter(client: Client, user: str, stop: asyncio.Event) -> None:
    headers = client.headers(user)
    while not stop.is_set():
        nonce = uuid.uuid4().hex
        body = {"event_type": "habit_completed", "nonce": nonce, "payload": {"habit_id": "h1"},
                "event_time": datetime.now(timezone.utc).isoformat()}
        client.tally.events_sent += 1
        response = await client.persist("POST", "/v1/events", json=body, headers=headers)
        if response is None:
            break
        if response.status_code in (200, 202):
            client.tally.events_acked[nonce] = response.json()["event_id"]
        elif response.status_code == 429:
            client.tally.events_rate_limited += 1
        else:
            client.tally.client_errors.append(f"event {response.status_code}: {response.text[:200]}")
        await asyncio.sleep(1.5)


SPENDER_FUNDS = 2000  # four coupons: a spender runs dry within seconds and is funded again, all run long


async def fund(client: Client, user: str, round_: int) -> bool:
    admin = client.headers("chaos-admin", "admin")
    award = await client.persist("POST", "/v1/admin/awards",
                                 json={"user_id": user, "points": SPENDER_FUNDS, "reason": "chaos"},
                                 headers={**admin, "Idempotency-Key": f"fund-{user}-{round_}"})
    if award is None or award.status_code != 201:
        client.tally.client_errors.append(f"award {award and award.status_code}")
        return False
    client.tally.awarded[user] = client.tally.awarded.get(user, 0) + SPENDER_FUNDS
    return True


async def spender(client: Client, user: str, template_id: str, stop: asyncio.Event) -> None:
    """Spends on coupons until the run ends, funded again whenever the balance runs out: so balances
    keep moving through every fault, and a redeemer that forgot a debit or a credit shows."""
    headers = client.headers(user)
    rounds = 0
    if not await fund(client, user, rounds):
        return
    while not stop.is_set():
        key = uuid.uuid4().hex
        response = await client.persist("POST", "/v1/redemptions", json={"template_id": template_id},
                                        headers={**headers, "Idempotency-Key": key})
        if response is None:
            break
        if response.status_code in (201, 202):
            client.tally.redemptions_acked[key] = response.json()["redemption_id"]
            if response.status_code == 201:
                client.tally.coupons_acked.add(response.json()["coupon_id"])
        elif response.status_code == 409 and response.json().get("type", "").endswith("/insufficient-points"):
            rounds += 1
            if not await fund(client, user, rounds):
                return
        elif response.status_code != 409:
            client.tally.client_errors.append(f"redemption {response.status_code}: {response.text[:200]}")
        await asyncio.sleep(3)


def inject(stack: Stack, fault: str, pause_seconds: float, down_seconds: float = 0.0) -> None:
    kind, name = fault.split("-", 1)
    if kind == "kill":
        os.kill(_process(stack, name).pid(), signal.SIGKILL)
        time.sleep(down_seconds)  # `heal` starts it again afterwards
    elif kind == "pause":
        pid = _process(stack, name).pid()
        os.kill(pid, signal.SIGSTOP)  # past the consumer session timeout: the group moves on without it
        time.sleep(pause_seconds)
        os.kill(pid, signal.SIGCONT)
    elif kind == "restart":
        stack.restart_infrastructure(name, echo=lambda _: None)
    elif fault == "roll-kafka":
        roll(stack)


def _process(stack: Stack, name: str):
    if any(s.name == name for s in stack.services):
        return stack.service(name).process()
    return stack.part(name).process


def roll(stack: Stack, echo=lambda _: None, patience: float = 120.0) -> None:
    """Restart every broker in turn, each once the one before has caught up with every partition."""
    for broker in stack.brokers:
        echo(f"restarting {broker.name}")
        stack.restart_infrastructure(broker.name, echo=echo)
        deadline = time.monotonic() + patience
        while behind := asyncio.run(out_of_sync(stack.settings.kafka_bootstrap_servers)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{broker.name} did not catch up: {behind[:5]}")
            time.sleep(1)


async def redeemer_balances(stack: Stack) -> dict[str, int]:
    """user -> spendable points as the redeemer's committed state holds them."""
    bootstrap = stack.settings.kafka_bootstrap_servers
    stored = await read_to_end(bootstrap, topics.REDEEMER_STATE, set(await partitions_of(bootstrap,
                                                                                        topics.REDEEMER_STATE)))
    return {key.decode(): json.loads(value)["balance"] for values in stored.values() for key, value in values.items()}


async def check(stack: Stack, tally: Tally, users: list[str], settle_seconds: float) -> tuple[dict, dict]:
    pool = await create_pool(stack.settings.dsn, min_size=1, max_size=2)

    async def spenders() -> tuple[list, list[str]]:
        """Each spender's coupons, and the spenders whose balance is not what they were given less
        what their coupons cost (exactly, through every fault)."""
        bought = await pool.fetch(
            "SELECT user_id, count(*) AS n, sum(issued_points_cost)::bigint AS points FROM coupons "
            "WHERE user_id = ANY($1::text[]) GROUP BY user_id", list(tally.awarded))
        spent = {r["user_id"]: r["points"] for r in bought}
        balances = {r["user_id"]: r["available_points"] for r in await pool.fetch(
            "SELECT user_id, available_points FROM user_points_cache WHERE user_id = ANY($1::text[])",
            list(tally.awarded))}
        return bought, sorted(u for u, given in tally.awarded.items() if balances.get(u, 0) != given - spent.get(u, 0))

    try:
        acked = [uuid.UUID(i) for i in tally.events_acked.values()]
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline:  # until everything acknowledged is decided and shown
            undecided = await pool.fetchval(
                "SELECT $2::int - count(*) FILTER (WHERE validation_status <> 'pending') FROM points_events "
                "WHERE id = ANY($1::uuid[])", acked, len(acked))
            if undecided == 0 and not (await spenders())[1]:
                break
            await asyncio.sleep(1)
        found = await pool.fetchval("SELECT count(*) FROM points_events WHERE id = ANY($1::uuid[])", acked)
        decided = await pool.fetchval("SELECT count(*) FROM points_events WHERE id = ANY($1::uuid[]) "
                                      "AND validation_status <> 'pending'", acked)
        stuck = [dict(r) for r in await pool.fetch(
            "SELECT user_id, created_at, source_partition FROM points_events WHERE id = ANY($1::uuid[]) "
            "AND validation_status = 'pending' ORDER BY created_at LIMIT 5", acked)]
        # Every row of a load user's event traces back to exactly one claimed nonce.
        unclaimed = await pool.fetchval(
            "SELECT count(*) FROM points_events p WHERE p.user_id = ANY($1::text[]) AND p.event_type = "
            "'habit_completed' AND NOT EXISTS (SELECT 1 FROM used_nonces n WHERE n.event_id = p.id)", users)
        claims_twice = await pool.fetchval(
            "SELECT count(*) FROM (SELECT event_id FROM used_nonces WHERE user_id = ANY($1::text[]) "
            "GROUP BY event_id HAVING count(*) > 1) d", users)
        coupons = {str(r["coupon_id"]) for r in await pool.fetch("SELECT coupon_id FROM coupons")}
        answered = {str(r["command_id"]): r["outcome"] for r in await pool.fetch(
            "SELECT command_id, outcome FROM command_answers WHERE command = 'RedeemCoupon'")}
        debits_without_coupon = await pool.fetchval(
            "SELECT count(*) FROM points_events p WHERE p.event_type = 'coupon_redemption' AND NOT EXISTS "
            "(SELECT 1 FROM coupons c WHERE c.coupon_id::text = p.related_entity_id)")
        coupons_without_debit = await pool.fetchval(
            "SELECT count(*) FROM coupons c WHERE NOT EXISTS (SELECT 1 FROM points_events p WHERE "
            "p.event_type = 'coupon_redemption' AND p.related_entity_id = c.coupon_id::text)")
        duplicate_coupons = await pool.fetchval(
            "SELECT count(*) FROM (SELECT redemption_id FROM coupons GROUP BY redemption_id HAVING count(*) > 1) d")
        negative = await pool.fetchval("SELECT count(*) FROM user_points_cache WHERE available_points < 0")
        discrepancies = len(await pool.fetch(BALANCE_DISCREPANCIES))
        cached = {r["user_id"]: r["available_points"] for r in await pool.fetch(
            "SELECT user_id, available_points FROM user_points_cache WHERE user_id = ANY($1::text[])", users)}
        bought, misspent = await spenders()
    finally:
        await pool.close()
    accounts = await redeemer_balances(stack)
    balances_differ = sorted(u for u in users if accounts.get(u, 0) != cached.get(u, 0))
    unresolved = [k for k, rid in tally.redemptions_acked.items() if rid not in answered]
    details = {"lost_events": len(acked) - found, "duplicate_events": unclaimed + claims_twice,
               "undecided_events": len(acked) - decided, "first_undecided": stuck,
               "lost_redemptions": len(tally.coupons_acked - coupons) + len(unresolved),
               "duplicate_coupons": duplicate_coupons, "balances_differ": balances_differ[:5],
               "spenders_misbalanced": misspent[:5], "spender_coupons": sum(r["n"] for r in bought)}
    checks = {
        "every acknowledged event is in points_events, once": found == len(acked) and claims_twice == 0,
        "every acknowledged event is decided": decided == len(acked),
        "no event row without its nonce claim (nothing counted twice)": unclaimed == 0,
        "cache equals ledger (the guide's query returns no rows)": discrepancies == 0,
        "the redeemer's balances equal the ledger's": not balances_differ,
        "no negative balance": negative == 0,
        "each spender's balance is what it was given less what its coupons cost": not misspent,
        "no coupon issued twice": duplicate_coupons == 0,
        "no debit without its coupon, no coupon without its debit": debits_without_coupon == coupons_without_debit == 0,
        "every acknowledged redemption is visible": details["lost_redemptions"] == 0,
    }
    return checks, details


async def run(stack: Stack, *, faults: tuple[str, ...] = FAULTS, users: int = 20, spenders: int = 5,
              gap_seconds: float = 6.0, pause_seconds: float = 15.0, down_seconds: float = 0.0,
              settle_seconds: float = 180.0,
              echo=print) -> Report:
    started = time.monotonic()
    await asyncio.to_thread(stack.heal, lambda _: None)
    tally = Tally()
    client = Client(stack, tally, deadline=started + 3600)
    admin = client.headers("chaos-admin", "admin")
    template = await client.persist("POST", "/v1/admin/coupon-templates",
                                    json={"name": "Chaos coupon", "partner": "Chaos", "points_cost": 500},
                                    headers=admin)
    load_users = [f"chaos-{uuid.uuid4().hex[:8]}-{i}" for i in range(users)]
    spend_users = [f"chaos-spender-{uuid.uuid4().hex[:8]}-{i}" for i in range(spenders)]
    stop = asyncio.Event()
    load = [asyncio.create_task(submitter(client, u, stop)) for u in load_users]
    load += [asyncio.create_task(spender(client, u, template.json()["template_id"], stop)) for u in spend_users]
    runs = []
    try:
        for fault in faults:
            await asyncio.sleep(gap_seconds)
            echo(f"injecting {fault}")
            begun = time.monotonic()
            await asyncio.to_thread(inject, stack, fault, pause_seconds, down_seconds)
            healing = time.monotonic()
            await asyncio.to_thread(stack.heal, lambda _: None)
            runs.append(FaultRun(fault, healing - begun, time.monotonic() - healing))
            echo(f"recovered from {fault} in {runs[-1].recovery_seconds:.1f}s")
        await asyncio.sleep(gap_seconds)
    finally:
        stop.set()
        await asyncio.gather(*load, return_exceptions=True)
        await client.http.aclose()
    echo("load stopped; checking the invariants")
    checks, details = await check(stack, tally, load_users + spend_users, settle_seconds)
    shape = f"{len(stack.brokers)} broker(s), {stack.settings.instances} instance(s) of every service"
    return Report(runs, tally, checks, details, time.monotonic() - started, shape)
