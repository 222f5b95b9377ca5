"""`points bench`: the deployment guide's load tests against the running local system, reported as
medians and ratios from one run (timing on a shared machine is noisy; compare within a run).

1. A single client, one request at a time: `GET /healthz` (the HTTP floor), `POST /v1/events` (the
   floor plus a PostgreSQL claim and a Kafka write acknowledged by the broker) and the time until the
   decision is readable (`GET /v1/events/{id}` says validated).
2. The guide's artillery scripts in deploy/load: 100 users x 10 events, then 50 concurrent users
   redeeming twice with a balance for one. PostgreSQL's CPU is sampled meanwhile.
3. The guide's invariants afterwards: cache equals ledger, no duplicate coupon, every coupon with its
   debit, one coupon per user.
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil

from services.ingest.auth import mint_dev_token
from services.validator.signals import rule_set
from shared.db import create_pool
from shared.guide_queries import BALANCE_DISCREPANCIES
from shared.settings import Settings

LOAD = Path(__file__).resolve().parent / "load"
ARTILLERY = LOAD / "node_modules" / ".bin" / "artillery"


def run_artillery(script: str, target: str, report: Path, **env: str) -> dict:
    """Run one of deploy/load's scripts; the aggregate of artillery's JSON report."""
    if not ARTILLERY.exists():
        raise RuntimeError("artillery is not installed: run `make load-tools`")
    subprocess.run([str(ARTILLERY), "run", "--quiet", "--target", target, "--output", str(report), script],
                   cwd=LOAD, env={**os.environ, **env, "ARTILLERY_DISABLE_TELEMETRY": "true"}, check=True,
                   capture_output=True, timeout=600)
    return json.loads(report.read_text())["aggregate"]


def quantile(values: list[float], q: float) -> float:
    """Interpolated between observations, so a p95 of twenty samples is not simply the slowest one."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@dataclass
class Timings:
    name: str
    seconds: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p95_ms(self) -> float:
        return quantile(self.seconds, 0.95) * 1000


@dataclass
class LoadRun:
    name: str
    aggregate: dict
    cpu: list[float]

    @property
    def requests(self) -> int:
        return self.aggregate["counters"].get("http.requests", 0)

    def codes(self) -> dict[str, int]:
        return {k.rsplit(".", 1)[-1]: v for k, v in self.aggregate["counters"].items() if k.startswith("http.codes.")}

    @property
    def errors(self) -> int:
        """Answers a client could not use: transport errors and 5xx (a 409 for want of points is an answer)."""
        counters = self.aggregate["counters"]
        failed = sum(v for k, v in counters.items() if k.startswith("errors."))
        return failed + sum(v for code, v in self.codes().items() if code.startswith("5"))

    def response_ms(self, stat: str) -> float:
        return self.aggregate["summaries"]["http.response_time"][stat]


@dataclass
class BenchReport:
    started: datetime
    serial: list[Timings] = field(default_factory=list)
    loads: list[LoadRun] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    # (ev/s, seconds) the stack ran, unreported, before anything here was measured
    warmed_up: tuple[int, float] | None = None

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def markdown(self) -> str:
        floor = self.serial[0].median_ms
        lines = [
            "# Benchmarks", "",
            f"Written by `make bench` (`points bench`) on {self.started:%Y-%m-%d %H:%M} UTC against the local system "
            f"(Kafka, PostgreSQL and every service as processes on this machine: {psutil.cpu_count()} cores). "
            "Shared machines are noisy: compare the ratios, measured in this same run, rather than absolute times."
            + (f" Before anything here was measured the stack ran {self.warmed_up[1]:.0f} s at {self.warmed_up[0]} ev/s, "
               "unreported, so the broker's JVM had compiled its hot paths (measured before that, its cost is "
               "mostly compiling)." if self.warmed_up else ""), "",
            "## One client, one request at a time", "",
            "| measure | median (ms) | p95 (ms) | median / healthz |", "|---|---|---|---|",
            *[f"| {t.name} | {t.median_ms:.1f} | {t.p95_ms:.1f} | {t.median_ms / floor:.1f}x |" for t in self.serial], "",
            "## The guide's load tests (artillery)", "",
            "| script | requests | status codes | errors | p50 (ms) | p95 (ms) | p99 (ms) | PostgreSQL CPU, peak |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for load in self.loads:
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(load.codes().items()))
            cpu = f"{max(load.cpu):.0f} % of the machine" if load.cpu else "n/a"
            lines.append(f"| {load.name} | {load.requests} | {codes} | {load.errors} | {load.response_ms('median'):.0f} "
                         f"| {load.response_ms('p95'):.0f} | {load.response_ms('p99'):.0f} | {cpu} |")
        lines += ["", "## The guide's thresholds and invariants", "", "| check | holds |", "|---|---|",
                  *[f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in self.checks.items()]]
        return "\n".join(lines) + "\n"


class CpuSampler:
    """PostgreSQL's share of the machine's CPU (every server process, connections opened during the
    load included), sampled while a load runs. Nothing is sampled for a PostgreSQL elsewhere."""

    def __init__(self):
        self.samples: list[float] = []
        self._known: dict[int, psutil.Process] = {}
        self._task: asyncio.Task | None = None

    def _refresh(self) -> None:
        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == "postgres" and proc.pid not in self._known:
                self._known[proc.pid] = proc
                try:
                    proc.cpu_percent(None)  # the first call only starts the measurement
                except psutil.Error:
                    pass

    async def _sample(self) -> None:
        self._refresh()
        while True:
            await asyncio.sleep(0.5)
            total = 0.0
            for pid, proc in list(self._known.items()):
                try:
                    total += proc.cpu_percent(None)
                except psutil.Error:
                    del self._known[pid]
            if self._known:
                self.samples.append(total / psutil.cpu_count())
            self._refresh()

    async def __aenter__(self) -> "CpuSampler":
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()


async def _timed(call) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def serial_timings(settings: Settings, samples: int, step: Callable[[int], None]) -> list[Timings]:
    user = f"bench-serial-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {mint_dev_token(settings, user, 'user', 3600)}"}
    health, submit, decide = [], [], []
    async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=30) as client:
        for i in range(samples):
            health.append(await _timed(lambda: client.get("/healthz")))
            step(1)
        # Under the per-user hourly limit; a second apart, as an honest app would send them.
        for i in range(min(samples, settings.rate_limit_per_hour - 1)):
            body = {"event_type": "habit_completed", "event_time": datetime.now(timezone.utc).isoformat(),
                    "nonce": uuid.uuid4().hex, "payload": {"habit_id": f"h{i}"}}
            started = time.perf_counter()
            response = await client.post("/v1/events", json=body, headers=headers)
            submit.append(time.perf_counter() - started)
            response.raise_for_status()
            event_id = response.json()["event_id"]
            deadline = time.monotonic() + 60
            while True:
                seen = await client.get(f"/v1/events/{event_id}", headers=headers)
                if seen.status_code == 200 and seen.json()["validation_status"] != "pending":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"event {event_id} was not decided within a minute: is the validator up?")
                await asyncio.sleep(0.005)
            decide.append(time.perf_counter() - started)
            step(1)
            await asyncio.sleep(max(0.0, rule_set(settings).min_spacing_seconds + 0.05 - (time.perf_counter() - started)))
    return [Timings("GET /healthz", health), Timings("POST /v1/events (answered 202)", submit),
            Timings("POST /v1/events until the decision is readable", decide)]


def write_users(path: Path, settings: Settings, prefix: str, count: int) -> list[tuple[str, str]]:
    names = [f"{prefix}-{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    users = [(user, mint_dev_token(settings, user, "user", 3600)) for user in names]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "token"])
        writer.writerows(users)
    return users


async def fund(settings: Settings, users: list[tuple[str, str]], points: int) -> str:
    """A template costing `points`, and each user credited exactly that (admin awards), visible in the cache."""
    admin = {"Authorization": f"Bearer {mint_dev_token(settings, 'bench-admin', 'admin', 3600)}"}
    async with httpx.AsyncClient(base_url=settings.gateway_url, timeout=30) as client:
        template = await client.post("/v1/admin/coupon-templates", headers=admin, json={
            "name": "Bench coupon", "partner": "Bench", "points_cost": points, "valid_days": 30})
        template.raise_for_status()
        for user, _ in users:
            award = await client.post("/v1/admin/awards", json={"user_id": user, "points": points, "reason": "bench"},
                                      headers={**admin, "Idempotency-Key": uuid.uuid4().hex})
            award.raise_for_status()
    pool = await create_pool(settings.dsn, min_size=1, max_size=2)
    try:
        names = [user for user, _ in users]
        deadline = time.monotonic() + 120
        while await pool.fetchval("SELECT count(*) FROM user_points_cache WHERE user_id = ANY($1) "
                                  "AND available_points = $2", names, points) < len(names):
            if time.monotonic() > deadline:
                raise RuntimeError("the awards did not reach the balances within two minutes: is the projector up?")
            await asyncio.sleep(0.2)
    finally:
        await pool.close()
    return template.json()["template_id"]


async def invariants(settings: Settings, spenders: list[str], redeemed: int) -> dict[str, bool]:
    pool = await create_pool(settings.dsn, min_size=1, max_size=2)
    try:
        deadline = time.monotonic() + 60
        while (await pool.fetchval("SELECT count(*) FROM coupons WHERE user_id = ANY($1)", spenders) < redeemed
               and time.monotonic() < deadline):
            await asyncio.sleep(0.2)
        per_user = await pool.fetch("SELECT user_id, count(*) AS n FROM coupons WHERE user_id = ANY($1) "
                                    "GROUP BY user_id", spenders)
        return {
            "cache equals ledger (the guide's query returns no rows)": await pool.fetch(BALANCE_DISCREPANCIES) == [],
            "no coupon code hash issued twice": await pool.fetchval(
                "SELECT count(*) FROM (SELECT code_hash FROM coupons GROUP BY code_hash HAVING count(*) > 1) d") == 0,
            "every coupon has its debit": await pool.fetchval(
                "SELECT count(*) FROM coupons c WHERE NOT EXISTS (SELECT 1 FROM points_events p "
                "WHERE p.event_type = 'coupon_redemption' AND p.related_entity_id = c.coupon_id::text)") == 0,
            "each redeeming user got exactly one coupon": len(per_user) == len(spenders)
            and all(r["n"] == 1 for r in per_user),
            "no negative balance": await pool.fetchval(
                "SELECT count(*) FROM user_points_cache WHERE available_points < 0") == 0,
        }
    finally:
        await pool.close()


async def run(settings: Settings, *, samples: int, progress,
              warmed_up: tuple[int, float] | None = None) -> BenchReport:
    """`progress(description, total)` returns a step(n) callable for the part it names; `warmed_up`,
    what ran before, for the report to say."""
    report = BenchReport(started=datetime.now(timezone.utc), warmed_up=warmed_up)
    users_csv = LOAD / "users.csv"
    target = settings.gateway_url
    reports = LOAD / ".reports"
    reports.mkdir(exist_ok=True)

    report.serial = await serial_timings(settings, samples, progress("one request at a time", samples * 2))

    step = progress("artillery: 100 users x 10 events", 1)
    write_users(users_csv, settings, "bench-events", 100)
    async with CpuSampler() as cpu:
        events = await asyncio.to_thread(run_artillery, "load-test-events.yml", target, reports / "events.json")
    report.loads.append(LoadRun("load-test-events.yml (100 users x 10 events)", events, cpu.samples))
    step(1)

    step = progress("artillery: 50 concurrent redemptions", 3)
    spenders = write_users(users_csv, settings, "bench-spender", 50)
    template_id = await fund(settings, spenders, 200)
    step(1)
    async with CpuSampler() as cpu:
        redemptions = await asyncio.to_thread(run_artillery, "load-test-redemptions.yml", target,
                                              reports / "redemptions.json", POINTS_TEMPLATE_ID=template_id)
    redeemed = LoadRun("load-test-redemptions.yml (50 users, 2 tries each)", redemptions, cpu.samples)
    report.loads.append(redeemed)
    step(1)

    first = report.loads[0]
    report.checks = {
        "events: p95 latency < 500 ms": first.response_ms("p95") < 500,
        "events: error rate < 0.1 %": first.requests > 0 and first.errors / first.requests < 0.001,
        "events: every request answered 202": first.codes().get("202", 0) == first.requests == 1000,
        **({"events: PostgreSQL CPU < 70 %": max(first.cpu) < 70} if first.cpu else {}),
        "redemptions: one 201 and one 409 per user": redeemed.codes() == {"201": 50, "409": 50},
        **await invariants(settings, [user for user, _ in spenders], redeemed.codes().get("201", 0)),
    }
    step(1)
    return report
