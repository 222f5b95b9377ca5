"""Where the system stops keeping up: offered rates stepped up, open loop, until p99 or errors break.

For each step: accepted events per second, answer latency p50/p99 (from when the request was due,
so a queue in front of a slow gateway counts), errors, decision latency (from due until the
decision is readable in PostgreSQL, sampled), how long the pipeline took to drain once the load
stopped, and the CPU milliseconds each process of the stack spent per accepted event (measured from
the step's start until it drained, so the validator's and projector's share is in it). Beside
them, in the same run, what the machine allows: `GET /healthz` answers per second, raw pipelined
produce on the same broker, raw batched insert on the same PostgreSQL.

The load generator writes HTTP/1.1 over plain asyncio streams: a generator costing as much CPU per
request as the gateway would halve what the measurement can see on two cores.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

import psutil

from deploy.bench import quantile
from services.ingest.auth import mint_dev_token
from shared.db import create_pool
from shared.settings import Settings

# A step breaks when any of these holds; the steps after it are not run.
BROKEN_P99_MS = 1000.0
BROKEN_ERROR_SHARE = 0.01
BROKEN_ACCEPTED_SHARE = 0.9
# Issue #10's goals, reported against each run (never asserted in a test: timing is the machine's).
GOAL_CPU_MS_PER_EVENT = 1.5
GOAL_RATE, GOAL_SECONDS, GOAL_P99_MS, GOAL_DECISION_P99_MS, GOAL_DRAIN_SECONDS = 1000, 60, 100.0, 1000.0, 5.0
GOAL_BURST_P95_MS = GOAL_REDEMPTION_P95_MS = 100.0
SAMPLE_EVERY = 10  # one event in this many has its decision latency measured
WARM_UP_SECONDS = 45.0


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Connections to one gateway, opened as the offered load needs them."""

    def __init__(self, url: str, limit: int = 512):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(limit)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        async with self.slots:
            if self.idle:
                reused = self.idle.pop()
                try:
                    answer = await reused.request(raw)
                    self.idle.append(reused)
                    return answer
                except (OSError, asyncio.IncompleteReadError):
                    # The server closed it while idle (its keep-alive timeout): send on a new one,
                    # as any HTTP client would (the request is idempotent by its nonce).
                    reused.close()
            connection = Connection(*await asyncio.open_connection(self.host, self.port))
            try:
                answer = await connection.request(raw)
            except BaseException:
                connection.close()
                raise
            self.idle.append(connection)
            return answer

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


def event_request(host: str, token: str, n: int) -> bytes:
    body = json.dumps({"event_type": "habit_completed", "nonce": uuid.uuid4().hex,
                       "event_time": datetime.now(timezone.utc).isoformat(), "payload": {"habit_id": f"h{n % 7}"}},
                      separators=(",", ":")).encode()
    return (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class Step:
    name: str
    offered: float  # events per second asked for (0: closed loop)
    seconds: float
    accepted: int = 0
    errors: int = 0
    codes: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, accepted requests
    decisions: list[float] = field(default_factory=list)  # seconds, sampled
    undecided: int = 0  # sampled events not readable as decided when the drain gave up
    drain_seconds: float = 0.0
    cpu_ms: dict[str, float] = field(default_factory=dict)  # process -> CPU ms spent over the step

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def error_share(self) -> float:
        sent = self.accepted + self.errors
        return self.errors / sent if sent else 0.0

    @staticmethod
    def ms(values: list[float], q: float) -> float:
        return quantile(values, q) * 1000 if values else float("nan")

    def cpu_per_event(self) -> dict[str, float]:
        return {name: ms / self.accepted for name, ms in self.cpu_ms.items()} if self.accepted else {}

    @property
    def broken(self) -> bool:
        return (self.ms(self.latencies, 0.99) > BROKEN_P99_MS or self.error_share > BROKEN_ERROR_SHARE
                or (self.offered > 0 and self.rate < BROKEN_ACCEPTED_SHARE * self.offered))


class CpuMeter:
    """CPU seconds (user + system) of every process of the stack, PostgreSQL's backends included."""

    def __init__(self, pids: dict[str, int]):
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self.procs["load generator"] = psutil.Process()

    def _seconds(self, proc: psutil.Process) -> float:
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except psutil.Error:
                pass
        return total

    def read(self) -> dict[str, float]:
        return {name: self._seconds(proc) for name, proc in self.procs.items()}

    @staticmethod
    def spent_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: (after[name] - before[name]) * 1000 for name in before if name in after}


class Decisions:
    """Sampled events' time from due until PostgreSQL shows them decided."""

    def __init__(self, pool):
        self.pool = pool
        self.awaiting: dict[uuid.UUID, float] = {}
        self.seconds: list[float] = []

    def expect(self, event_id: str, due: float) -> None:
        self.awaiting[uuid.UUID(event_id)] = due

    async def follow(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or self.awaiting:
            if self.awaiting:
                rows = await self.pool.fetch("SELECT id FROM points_events WHERE id = ANY($1::uuid[]) "
                                             "AND validation_status <> 'pending'", list(self.awaiting))
                now = time.perf_counter()
                for row in rows:
                    self.seconds.append(now - self.awaiting.pop(row["id"]))
            await asyncio.sleep(0.05)


class Load:
    def __init__(self, settings: Settings, gateway: str):
        self.settings = settings
        self.gateway = gateway
        self.host = urlsplit(gateway).netloc
        self.run_id = uuid.uuid4().hex[:6]  # names this run's users, apart from earlier runs'

    def prefix(self, step: Step) -> str:
        return f"knee-{self.run_id}-{step.name}"

    def users(self, prefix: str, count: int) -> list[str]:
        return [mint_dev_token(self.settings, f"{prefix}-{i}", "user", 3600) for i in range(count)]

    async def _send(self, pool: Pool, step: Step, raw: bytes, due: float, decisions: Decisions, n: int) -> None:
        try:
            status, body = await pool.request(raw)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            step.errors += 1
            return
        step.codes[status] = step.codes.get(status, 0) + 1
        if status in (200, 202):
            step.accepted += 1
            step.latencies.append(time.perf_counter() - due)
            if n % SAMPLE_EVERY == 0:
                decisions.expect(json.loads(body)["event_id"], due)
        else:
            step.errors += 1

    async def open_loop(self, step: Step, db, meter: CpuMeter, echo: Callable[[str], None],
                        arrivals: Callable[[int, float], list[tuple[float, int]]] | None = None) -> Step:
        """Events due at the offered rate (or as `arrivals` says: (due offset, user) pairs), each
        sent when due whatever the answers before it."""
        total = round(step.offered * step.seconds)
        if arrivals is None:
            count, plan = people(total, step.offered, random.Random(step.name))
        else:
            plan = arrivals(total, step.seconds)
            count = max(user for _, user in plan) + 1
        tokens = self.users(self.prefix(step), count)
        pool, decisions, stop = Pool(self.gateway), Decisions(db), asyncio.Event()
        follower = asyncio.create_task(decisions.follow(stop))
        before = meter.read()
        started = time.perf_counter()
        sending = []
        for n, (offset, user) in enumerate(plan):
            due = started + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(self._send(pool, step, event_request(self.host, tokens[user], n),
                                                          due, decisions, n)))
        await asyncio.gather(*sending)
        step.seconds = max(step.seconds, time.perf_counter() - started)
        stop.set()
        load_ended = time.perf_counter()
        try:
            await asyncio.wait_for(follower, timeout=120)
        except asyncio.TimeoutError:
            step.undecided = len(decisions.awaiting)
        step.drain_seconds = await self._drained(db, step, load_ended)
        step.cpu_ms = meter.spent_ms(before, meter.read())
        step.decisions = decisions.seconds
        pool.close()
        echo(f"{step.name}: {step.rate:.0f} ev/s accepted, p99 {step.ms(step.latencies, 0.99):.0f} ms, "
             f"{step.errors} errors, drained in {step.drain_seconds:.1f} s")
        return step

    async def _drained(self, db, step: Step, since: float, patience: float = 120.0) -> float:
        """Seconds from `since` until every event the step had accepted is decided in the read model."""
        while time.perf_counter() - since < patience:
            decided = await db.fetchval("SELECT count(*) FROM points_events WHERE user_id LIKE $1 "
                                        "AND validation_status <> 'pending'", f"{self.prefix(step)}-%")
            if decided >= step.accepted:
                return time.perf_counter() - since
            await asyncio.sleep(0.25)
        return float("inf")

    async def healthz_rate(self, seconds: float = 5.0, connections: int = 10) -> float:
        raw = f"GET /healthz HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        pool, done = Pool(self.gateway), 0
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await pool.request(raw)
                done += 1

        await asyncio.gather(*(client() for _ in range(connections)))
        pool.close()
        return done / seconds


async def raw_produce_rate(bootstrap: str, records: int = 20000) -> float:
    """Records per second one pipelined producer gets acknowledged (acks=all) on the same broker."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        await admin.create_topics([NewTopic(topic, 6, 1)])
        await producer.start()
        value = b"x" * 400  # about a signed submission's size
        started = time.perf_counter()
        futures = [await producer.send(topic, value, key=str(i % 1000).encode()) for i in range(records)]
        await asyncio.gather(*futures)
        return records / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()


async def raw_insert_rate(dsn: str, rows: int = 20000, batch: int = 500) -> float:
    """Rows per second inserted in batches of `batch` into a table shaped like points_events."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    try:
        await pool.execute(f"CREATE UNLOGGED TABLE {table} (id uuid PRIMARY KEY, user_id text, points integer, "
                           "at timestamptz)")
        await pool.execute(f"ALTER TABLE {table} SET LOGGED")
        now = datetime.now(timezone.utc)
        data = [(uuid.uuid4(), f"u{i % 1000}", i % 50, now) for i in range(rows)]
        started = time.perf_counter()
        for i in range(0, rows, batch):
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2, $3, $4)", data[i:i + batch])
        return rows / (time.perf_counter() - started)
    finally:
        await pool.execute(f"DROP TABLE IF EXISTS {table}")
        await pool.close()


# Each user sends at most this many events in a step: as few as people using an app send, and too
# few for the hourly velocity signal or the metronome's six intervals.
EVENTS_PER_USER = 6
# How far each event moves from its even spacing, as a share of that spacing: people are not clocks,
# and events exactly evenly spaced are what the metronome signal holds for review.
JITTER = 0.2


def people(total: int, offered: float, rng: random.Random) -> tuple[int, list[tuple[float, int]]]:
    """`total` events at `offered` a second from honest users: (user count, (due offset, user) pairs).
    Each user's events are at least 2 s apart (1.2 s after the jitter), so no signal mistakes them
    for a script and the steps measure the path most events take, not the fraud path."""
    count = max(int(offered * 2), -(-total // EVENTS_PER_USER))
    spacing, end = count / offered, total / offered
    return count, sorted((min(end, max(0.0, i / offered + rng.uniform(-JITTER, JITTER) * spacing)), i % count)
                         for i in range(total))


def together(users: int, each: int, gap: float) -> Callable[[int, float], list[tuple[float, int]]]:
    """The guide's test with every user arriving at once: `users` users, `each` events `gap` s apart."""
    def plan(total: int, seconds: float) -> list[tuple[float, int]]:
        return sorted((k * gap, user) for user in range(users) for k in range(each))
    return plan


@dataclass
class KneeReport:
    started: datetime
    cores: int
    healthz_rate: float
    produce_rate: float
    insert_rate: float
    steps: list[Step]
    burst: Step | None

    @staticmethod
    def stack_cpu_ms(step: Step) -> float:
        return sum(v for k, v in step.cpu_per_event().items() if k != "load generator")

    def goals(self, redemption_p95_ms: float | None) -> list[tuple[str, str, bool]]:
        """(goal, what this run measured, met) for each of issue #10's goals."""
        kept = [step for step in self.steps if not step.broken]
        best = max(kept, key=lambda step: step.rate, default=None)
        cpu = self.stack_cpu_ms(best) if best else None
        rows = [(f"whole stack <= {GOAL_CPU_MS_PER_EVENT} CPU-ms per event",
                 f"{cpu:.2f} at {best.name}" if best else "no step kept up",
                 cpu is not None and cpu <= GOAL_CPU_MS_PER_EVENT)]
        at = next((step for step in self.steps if step.offered == GOAL_RATE), None)
        if at is None:
            rows.append((f"{GOAL_RATE} ev/s for {GOAL_SECONDS} s", "not reached (an earlier step broke)", False))
        else:
            p99, decision_p99 = at.ms(at.latencies, 0.99), at.ms(at.decisions, 0.99)
            rows.append((f"{GOAL_RATE} ev/s for {GOAL_SECONDS} s, p99 < {GOAL_P99_MS:.0f} ms, every event decided, "
                         f"decision p99 < {GOAL_DECISION_P99_MS / 1000:.0f} s, drained within {GOAL_DRAIN_SECONDS:.0f} s",
                         f"{at.rate:.0f} ev/s for {at.seconds:.0f} s, p99 {p99:.0f} ms, {at.undecided} undecided, "
                         f"decision p99 {decision_p99:.0f} ms, drained in {at.drain_seconds:.1f} s",
                         at.seconds >= GOAL_SECONDS and at.rate >= 0.99 * GOAL_RATE and p99 < GOAL_P99_MS
                         and at.undecided == 0 and decision_p99 < GOAL_DECISION_P99_MS
                         and at.drain_seconds <= GOAL_DRAIN_SECONDS))
        if self.burst is not None:
            p95 = self.burst.ms(self.burst.latencies, 0.95)
            rows.append((f"100 users arriving together: p95 < {GOAL_BURST_P95_MS:.0f} ms, 0 errors",
                         f"p95 {p95:.0f} ms, {self.burst.errors} errors",
                         p95 < GOAL_BURST_P95_MS and self.burst.errors == 0))
        if redemption_p95_ms is not None:
            rows.append((f"the guide's redemptions (50 concurrent): p95 < {GOAL_REDEMPTION_P95_MS:.0f} ms",
                         f"p95 {redemption_p95_ms:.0f} ms", redemption_p95_ms < GOAL_REDEMPTION_P95_MS))
        return rows

    def _row(self, step: Step) -> str:
        total = self.stack_cpu_ms(step)
        return (f"| {step.name} | {step.offered:.0f} | {step.rate:.0f} | {step.ms(step.latencies, 0.5):.0f} | "
                f"{step.ms(step.latencies, 0.99):.0f} | {step.errors} | {step.ms(step.decisions, 0.5):.0f} | "
                f"{step.ms(step.decisions, 0.99):.0f} | {step.drain_seconds:.1f} | {total:.1f} | "
                f"{'yes' if step.broken else 'no'} |")

    def markdown(self, redemption_p95_ms: float | None = None) -> str:
        steps = [*self.steps, *([self.burst] if self.burst else [])]
        processes = sorted({name for step in steps for name in step.cpu_ms})
        lines = [
            "## Throughput: where it stops keeping up", "",
            f"Open loop on {self.cores} cores, the load generator on the same machine. Each step sends at its "
            f"offered rate whatever the answers; a step is *broken* when p99 > {BROKEN_P99_MS:.0f} ms, errors > "
            f"{BROKEN_ERROR_SHARE:.0%} or fewer than {BROKEN_ACCEPTED_SHARE:.0%} of the offered events are "
            f"accepted. The events come from honest users: each sends at most {EVENTS_PER_USER} in a step, at "
            f"least 2 s apart give or take {JITTER:.0%}, so the trust rules validate them all and the steps "
            "measure the path most events take (the guide's test below sends its users' events exactly 1.1 s "
            "apart, which the metronome signal holds for review). "
            "Latency counts from when a request was due; decision latency from due until the "
            f"decision is readable in PostgreSQL (one event in {SAMPLE_EVERY}); drain is from the load's end "
            "until nothing is pending.", "",
            "What the machine allows, measured in the same run:", "",
            "| floor | per second |", "|---|---|",
            f"| `GET /healthz`, 10 connections | {self.healthz_rate:,.0f} |",
            f"| raw pipelined produce, acks=all, same broker | {self.produce_rate:,.0f} |",
            f"| raw batched insert (500 rows a transaction), same PostgreSQL | {self.insert_rate:,.0f} |", "",
            "| step | offered ev/s | accepted ev/s | p50 ms | p99 ms | errors | decision p50 ms | decision p99 ms "
            "| drain s | CPU-ms per event (stack) | broken |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *[self._row(step) for step in steps], "",
            "CPU milliseconds per accepted event, by process:", "",
            "| step | " + " | ".join(processes) + " |", "|---|" + "---|" * len(processes),
            *[f"| {step.name} | " + " | ".join(f"{step.cpu_per_event().get(p, 0):.2f}" for p in processes) + " |"
              for step in steps],
        ]
        best = max(self.steps, key=lambda s: s.rate if not s.broken else 0, default=None)
        if best is not None and not best.broken:
            lines += ["", f"Highest step kept up with: {best.offered:.0f} ev/s offered, {best.rate:.0f} accepted "
                          f"({best.rate / self.healthz_rate:.1%} of the `/healthz` rate, "
                          f"{best.rate / self.produce_rate:.1%} of raw produce)."]
        lines += ["", "## Goals (issue #10)", "", "| goal | this run | met |", "|---|---|---|",
                  *[f"| {goal} | {figure} | {'yes' if met else 'no'} |" for goal, figure, met in
                    self.goals(redemption_p95_ms)]]
        return "\n".join(lines) + "\n"


async def warm_up(settings: Settings, pids: dict[str, int], *, rate: int, seconds: float = WARM_UP_SECONDS) -> None:
    """Load the stack, unreported, before anything is measured. The broker's JVM compiles its hot
    paths in its first minutes of load (its C2 compiler alone used most of a core): measured before
    that, the broker's cost is mostly compiling, and the first latencies are the compiler's."""
    db = await create_pool(settings.dsn, min_size=1, max_size=2)
    try:
        await Load(settings, settings.gateway_url).open_loop(Step("warm-up", rate, seconds), db, CpuMeter(pids),
                                                             lambda _: None)
    finally:
        await db.close()


async def run(settings: Settings, pids: dict[str, int], *, rates: tuple[int, ...] = (250, 500, 750, 1000, 2000),
              seconds: float = 60.0, echo: Callable[[str], None] = print) -> KneeReport:
    gateway = settings.gateway_url
    load = Load(settings, gateway)
    echo("measuring the floors")
    healthz = await load.healthz_rate()
    produce = await raw_produce_rate(settings.kafka_bootstrap_servers)
    insert = await raw_insert_rate(settings.dsn)
    meter = CpuMeter(pids)
    db = await create_pool(settings.dsn, min_size=1, max_size=2)
    steps: list[Step] = []
    burst = None
    try:
        # Before the steps: the last step is meant to break the system, and what it leaves behind
        # (the database vacuuming its inserts, say) is not what 100 users arriving meet.
        echo("100 users arriving together, 10 events each 1.1 s apart")
        burst = await load.open_loop(Step("100-users-at-once", 0, 11.0), db, meter, echo,
                                     arrivals=together(100, 10, 1.1))
        burst.offered = 0
        for rate in rates:
            echo(f"offering {rate} ev/s for {seconds:.0f} s")
            step = await load.open_loop(Step(f"{rate}/s", rate, seconds), db, meter, echo)
            steps.append(step)
            if step.broken:
                break
    finally:
        await db.close()
    return KneeReport(datetime.now(timezone.utc), psutil.cpu_count(), healthz, produce, insert, steps, burst)
