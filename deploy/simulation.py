"""A traffic simulator: honest users mixed with scripted abuse, run through the validator's rules.

It uses the same pure pieces as the running validator (account books per device and IP, user
state, signals, decision), in the order the pipeline applies them, so its figures describe the
rules that run in production. Seeded, so a report can be reproduced exactly.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from uuid import UUID

from services.validator.rules import decide
from services.validator.signals import RuleSet
from services.validator.state import AccountBook, Context, UserState
from shared.catalogue import CATALOGUE
from shared.events import EventSubmitted

START = datetime(2026, 11, 2, tzinfo=timezone.utc)
KINDS = ("honest", "tap_bot", "replayer", "device_farm", "clock_cheater", "slow_farmer")


@dataclass(frozen=True)
class Simulated:
    kind: str
    abusive: bool
    event: EventSubmitted


class Population:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.events: list[Simulated] = []
        self._ids = 0

    def _uuid(self) -> UUID:
        self._ids += 1
        return UUID(int=self.rng.getrandbits(122) << 6 | self._ids % 64)

    def add(self, kind: str, abusive: bool, user: str, event_time: datetime, received: datetime, *,
            event_type: str = "habit_completed", payload: dict | None = None, device: str | None = None,
            ip: str | None = None, attestation: str = "absent") -> EventSubmitted:
        kind_points = CATALOGUE[event_type].points
        event = EventSubmitted(
            event_id=self._uuid(), user_id=user, event_type=event_type, event_time=event_time,
            nonce=self._uuid().hex, payload=payload if payload is not None else {"habit_id": "h1"}, device_id=device,
            attestation=attestation, client_ip_hash=ip, points=kind_points, received_at=received, body_hash="sim")
        self.events.append(Simulated(kind, abusive, event))
        return event


def honest_users(pop: Population, count: int, days: int) -> None:
    rng = pop.rng
    nat_ips = [f"nat-{i}" for i in range(max(1, count // 25))]
    family_devices: dict[str, list[str]] = defaultdict(list)
    for n in range(count):
        user = f"honest-{n}"
        habits = [f"h{i}" for i in range(rng.randint(2, 8))]
        device = f"phone-{n}"
        if rng.random() < 0.05:  # a family tablet, shared by two accounts
            tablet = f"tablet-{n // 2}"
            if len(family_devices[tablet]) < 2:
                family_devices[tablet].append(user)
                device = tablet
        ip = rng.choice(nat_ips) if rng.random() < 0.3 else f"home-{n}"
        attested = "valid" if rng.random() < 0.4 else "absent"
        clock = timedelta(seconds=rng.uniform(30, 60)) if rng.random() < 0.1 else timedelta(0)
        for day in range(days):
            base = START + timedelta(days=day)
            done = rng.sample(habits, k=min(len(habits), rng.randint(0, 6)))
            times = sorted(base + timedelta(hours=rng.uniform(7, 23)) for _ in done)
            offline = rng.random() < 0.1
            sync_at = (times[-1] + timedelta(hours=rng.uniform(0.2, 3))) if times else None
            for habit, at in zip(done, times):
                received = sync_at if offline else at + timedelta(seconds=rng.uniform(0.2, 3))
                pop.add("honest", False, user, at + clock, received, payload={"habit_id": habit}, device=device,
                        ip=ip, attestation=attested)
            if rng.random() < 0.7:
                at = base + timedelta(hours=rng.uniform(7, 10))
                pop.add("honest", False, user, at + clock, at + timedelta(seconds=1), event_type="daily_checkin",
                        payload={}, device=device, ip=ip, attestation=attested)


def tap_bots(pop: Population, count: int) -> None:
    rng = pop.rng
    for n in range(count):
        user, device = f"tapbot-{n}", f"bot-phone-{n}"
        for session in range(3):
            at = START + timedelta(days=session, hours=rng.uniform(8, 20))
            for _ in range(100):
                at += timedelta(seconds=rng.uniform(0.2, 0.6))
                pop.add("tap_bot", True, user, at, at, payload={"habit_id": "h1"}, device=device, ip=f"bot-{n}")


def replayers(pop: Population, count: int) -> None:
    rng = pop.rng
    for n in range(count):
        user, device = f"replayer-{n}", f"replay-phone-{n}"
        for day in range(5):
            at = START + timedelta(days=day, hours=rng.uniform(8, 20))
            pop.add("replayer", False, user, at, at + timedelta(seconds=1), payload={"habit_id": "h1"}, device=device)
            for copy in range(20):  # the captured request, sent again with fresh nonces
                pop.add("replayer", True, user, at, at + timedelta(minutes=2 + copy * 2), payload={"habit_id": "h1"},
                        device=device)


def device_farms(pop: Population, farms: int, accounts: int) -> None:
    rng = pop.rng
    for farm in range(farms):
        device, ip = f"farm-device-{farm}", f"farm-ip-{farm}"
        for day in range(3):
            for round_ in range(6):
                at = START + timedelta(days=day, hours=8 + 2 * round_)
                for a in range(accounts):  # every account in turn, as farm software runs them
                    at += timedelta(seconds=rng.uniform(5, 40))
                    pop.add("device_farm", True, f"farm-{farm}-{a}", at, at + timedelta(seconds=1),
                            payload={"habit_id": f"h{round_}"}, device=device, ip=ip)


def clock_cheaters(pop: Population, count: int) -> None:
    rng = pop.rng
    for n in range(count):
        user, device = f"cheater-{n}", f"cheat-phone-{n}"
        ahead = timedelta(minutes=rng.uniform(2, 5))  # the phone's clock set forward to pre-claim completions
        for day in range(5):
            for habit in range(6):
                received = START + timedelta(days=day, hours=rng.uniform(7, 23))
                pop.add("clock_cheater", True, user, received + ahead, received, payload={"habit_id": f"h{habit}"},
                        device=device, attestation="valid" if n % 2 else "absent")


def slow_farmers(pop: Population, count: int) -> None:
    rng = pop.rng
    for n in range(count):
        user, device = f"slowfarm-{n}", f"slow-phone-{n}"
        at = START + timedelta(hours=rng.uniform(0, 24))
        for i in range(288):  # every quarter hour for three days, a little jitter
            at += timedelta(minutes=15 * rng.uniform(0.97, 1.03))
            pop.add("slow_farmer", True, user, at, at + timedelta(seconds=1), payload={"habit_id": f"h{i % 4}"},
                    device=device)


def population(seed: int = 7, honest: int = 300, days: int = 7, scale: int = 10) -> list[Simulated]:
    pop = Population(seed)
    honest_users(pop, honest, days)
    tap_bots(pop, scale)
    replayers(pop, scale)
    device_farms(pop, max(1, scale // 3), 25)
    clock_cheaters(pop, scale)
    slow_farmers(pop, scale)
    return sorted(pop.events, key=lambda s: s.event.received_at)


@dataclass(frozen=True)
class Result:
    rule_set: str
    by_kind: dict[str, Counter]

    def _share(self, kinds, outcome) -> float:
        total = sum(self.by_kind[k]["abusive" if outcome == "caught" else "events"] for k in kinds)
        hits = sum(self.by_kind[k][outcome] for k in kinds)
        return hits / total if total else 0.0

    @property
    def abuse_caught(self) -> float:
        return self._share([k for k in KINDS if k != "honest"], "caught")

    @property
    def honest_validated(self) -> float:
        return self.by_kind["honest"]["honest_validated"] / max(1, self.by_kind["honest"]["honest"])

    def meets(self, caught: float = 0.95, honest: float = 0.99) -> bool:
        return self.abuse_caught >= caught and self.honest_validated >= honest


def run(events: list[Simulated], rules: RuleSet, progress=None) -> Result:
    """Decide every event in arrival order, as the pipeline does; tally outcomes per kind of actor."""
    users: dict[str, UserState] = defaultdict(UserState)
    devices: dict[str, AccountBook] = defaultdict(AccountBook)
    addresses: dict[str, AccountBook] = defaultdict(AccountBook)
    tally: dict[str, Counter] = defaultdict(Counter)
    for index, item in enumerate(events):
        event = item.event
        on_device = devices[event.device_id].add(event.user_id) if event.device_id else 0
        on_ip = addresses[event.client_ip_hash].add(event.user_id, keep=1000) if event.client_ip_hash else 0
        outcome = decide(event, users[event.user_id], Context(on_device, on_ip), rules, event.received_at)
        users[event.user_id].remember(event)
        validated = outcome.decision.validation_status == "validated"
        counts = tally[item.kind]
        counts["events"] += 1
        if item.abusive:
            counts["abusive"] += 1
            counts["caught"] += not validated
        else:
            counts["honest"] += 1
            counts["honest_validated"] += validated
        for reason in outcome.decision.reasons:
            counts[f"reason:{reason}"] += 1
        if progress and index % 500 == 0:
            progress(index, len(events))
    return Result(rules.version, dict(tally))


def rule_sets(default: RuleSet) -> list[RuleSet]:
    """The configured rules, and the seed's single rule (spacing only) for comparison."""
    silent = {name: 0 for name in ("attestation_valid", "attestation_invalid", "attestation_missing",
                                   "velocity_penalty", "daily_cap_penalty", "future_skew_penalty", "late_sync_penalty",
                                   "device_shared_penalty", "ip_shared_penalty", "burst_penalty", "duplicate_penalty",
                                   "metronome_penalty")}
    return [default, replace(default, version="spacing-only", **silent)]


def markdown(results: list[Result], seed: int, events: int) -> str:
    lines = [
        "# Validator quality: simulated traffic",
        "",
        f"Generated by `points simulate --seed {seed}` ({events} events). Honest users: daily habits at",
        "human times, offline syncs, family tablets, carrier NAT addresses, phones a minute fast. Scripted",
        "abuse: tap bots, replayers (captured requests with fresh nonces), device farms (25 accounts on one",
        "device, run in turn), clock cheaters (phone clock set minutes ahead), slow farmers (one event every",
        "quarter hour around the clock). An abusive event counts as caught when it is not validated.",
        "",
        "| rule set | abuse caught | honest validated | meets 95 % / 99 % |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.rule_set} | {r.abuse_caught:.2%} | {r.honest_validated:.2%} | "
                     f"{'yes' if r.meets() else 'no'} |")
    lines += ["", "Per kind of actor, with the configured rules:", "",
              "| actor | events | abusive | caught | honest validated |", "|---|---|---|---|---|"]
    first = results[0]
    for kind in KINDS:
        c = first.by_kind.get(kind, Counter())
        caught = f"{c['caught'] / c['abusive']:.2%}" if c["abusive"] else "-"
        honest = f"{c['honest_validated'] / c['honest']:.2%}" if c["honest"] else "-"
        lines.append(f"| {kind} | {c['events']} | {c['abusive']} | {caught} | {honest} |")
    return "\n".join(lines) + "\n"
