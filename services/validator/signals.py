"""Trust signals: each a small pure function of an event, what we remember of its user, and the
cross-account context. Each returns the findings that moved the score, with the evidence."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta

from services.validator.state import Context, UserState
from shared.catalogue import lookup
from shared.events import EventSubmitted, Severity


@dataclass(frozen=True)
class RuleSet:
    """Weights and thresholds; a new combination gets a new version, recorded with every decision."""

    version: str = "trust-v2"
    base: int = 85
    validated_min: int = 60
    review_min: int = 30
    attestation_valid: int = 15
    attestation_invalid: int = -45
    attestation_missing: int = -35
    min_spacing_seconds: float = 1.0
    rapid_fire_cap: int = 20
    hourly_limit: int = 20
    daily_limit: int = 60
    velocity_penalty: int = -35
    daily_cap_penalty: int = -50
    future_skew_seconds: float = 90.0
    future_skew_penalty: int = -50
    late_sync_hours: float = 12.0
    late_sync_penalty: int = -10
    accounts_per_device: int = 3
    device_shared_penalty: int = -40
    accounts_per_ip: int = 10
    ip_shared_penalty: int = -25
    silence_days: float = 14.0
    burst_events: int = 5
    burst_window_minutes: float = 10.0
    burst_penalty: int = -30
    duplicate_window_minutes: float = 60.0
    duplicate_penalty: int = -40
    metronome_intervals: int = 6
    metronome_max_variation: float = 0.1
    metronome_penalty: int = -50


def rule_set(settings) -> RuleSet:
    """The configured rules. Values that differ from the release's defaults get a version of their
    own, so every decision names the exact rules that made it."""
    named = {"validated_min": settings.validated_min_score, "review_min": settings.review_min_score,
             "min_spacing_seconds": settings.min_event_spacing_seconds}
    overrides = json.loads(settings.trust_rules) if settings.trust_rules else {}
    configured = RuleSet(**{**{k: v for k, v in named.items() if v is not None}, **overrides})
    default = RuleSet(version=configured.version)
    if configured == default:
        return configured
    changed = {k: v for k, v in asdict(configured).items() if v != getattr(default, k)}
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
    return replace(configured, version=f"{configured.version}+{digest}")


@dataclass(frozen=True)
class Finding:
    reason: str
    effect: int = 0
    cap: int | None = None
    severity: Severity | None = None  # set when the finding is worth a fraud insight
    evidence: dict = field(default_factory=dict)


def spacing(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    """The seed's rule: events under a second apart are a tap bot's, not a person's."""
    at = event.event_time.timestamp()
    gaps = [abs(at - seen) for seen in state.recent_event_timestamps()]
    if gaps and min(gaps) < rules.min_spacing_seconds:
        return [Finding("rapid_fire_events", cap=rules.rapid_fire_cap, severity="high",
                        evidence={"closest_seconds": round(min(gaps), 3)})]
    return []


def velocity(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    last_hour = state.received_within(event.received_at, timedelta(hours=1))
    last_day = state.received_within(event.received_at, timedelta(days=1))
    if last_hour >= rules.hourly_limit:
        return [Finding("velocity_hourly", rules.velocity_penalty, severity="medium",
                        evidence={"events_last_hour": last_hour + 1})]
    if last_day >= rules.daily_limit:
        return [Finding("velocity_daily", rules.velocity_penalty, severity="medium",
                        evidence={"events_last_day": last_day + 1})]
    return []


def daily_cap(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    """More completions of a kind in a day than the catalogue allows anyone."""
    kind = lookup(event.event_type)
    if kind is None or kind.daily_cap is None:
        return []
    today = state.same_type_on_day(event)
    if today >= kind.daily_cap:
        return [Finding("daily_cap_exceeded", rules.daily_cap_penalty, severity="medium",
                        evidence={"event_type": event.event_type, "count_today": today + 1, "cap": kind.daily_cap})]
    return []


def clock_skew(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    ahead = (event.event_time - event.received_at).total_seconds()
    if ahead > rules.future_skew_seconds:
        return [Finding("future_event_time", rules.future_skew_penalty, severity="medium",
                        evidence={"seconds_ahead": round(ahead)})]
    if -ahead > rules.late_sync_hours * 3600:
        return [Finding("late_sync", rules.late_sync_penalty, evidence={"hours_late": round(-ahead / 3600, 1)})]
    return []


def shared_device(event: EventSubmitted, context: Context, rules: RuleSet) -> list[Finding]:
    findings = []
    if context.accounts_on_device >= rules.accounts_per_device:
        findings.append(Finding("device_shared_by_accounts", rules.device_shared_penalty, severity="high",
                                evidence={"accounts_on_device": context.accounts_on_device}))
    if context.accounts_on_ip >= rules.accounts_per_ip:
        findings.append(Finding("many_accounts_on_ip", rules.ip_shared_penalty, severity="medium",
                                evidence={"accounts_on_ip": context.accounts_on_ip}))
    return findings


def burst_after_silence(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    silence = state.silence_before_current_burst(event.received_at, timedelta(minutes=rules.burst_window_minutes))
    in_burst = state.received_within(event.received_at, timedelta(minutes=rules.burst_window_minutes))
    if silence is not None and silence >= timedelta(days=rules.silence_days) and in_burst + 1 >= rules.burst_events:
        return [Finding("burst_after_silence", rules.burst_penalty, severity="medium",
                        evidence={"silent_days": silence.days, "events_in_burst": in_burst + 1})]
    return []


def duplicate_payload(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    """The same claim (type, payload and time) again with a fresh nonce: a replayed request."""
    if state.seen_payload(event, timedelta(minutes=rules.duplicate_window_minutes)):
        return [Finding("duplicate_payload", rules.duplicate_penalty, severity="high",
                        evidence={"event_type": event.event_type})]
    return []


def metronome(event: EventSubmitted, state: UserState, rules: RuleSet) -> list[Finding]:
    """Intervals too regular for a person: a script on a timer."""
    times = [*state.recent_received(), event.received_at.timestamp()]
    intervals = [b - a for a, b in zip(times, times[1:])][-rules.metronome_intervals:]
    if len(intervals) < rules.metronome_intervals or min(intervals) <= 0:
        return []
    # Floats, not statistics.pstdev: its exact arithmetic (Fractions) cost 6 % of the validator's CPU.
    mean = math.fsum(intervals) / len(intervals)
    variation = math.sqrt(math.fsum((x - mean) ** 2 for x in intervals) / len(intervals)) / mean
    if variation < rules.metronome_max_variation:
        return [Finding("metronomic_timing", rules.metronome_penalty, severity="medium",
                        evidence={"mean_interval_seconds": round(mean),
                                  "variation": round(variation, 3)})]
    return []


def attestation(event: EventSubmitted, rules: RuleSet) -> list[Finding]:
    if event.attestation == "valid":
        return [Finding("attestation_valid", rules.attestation_valid)]
    if event.attestation == "invalid":
        return [Finding("attestation_invalid", rules.attestation_invalid, severity="low",
                        evidence={"why": list(event.attestation_reasons)})]
    if "attestation_missing" in event.attestation_reasons:
        return [Finding("attestation_missing", rules.attestation_missing)]
    return []


def all_findings(event: EventSubmitted, state: UserState, context: Context, rules: RuleSet) -> list[Finding]:
    return [
        *attestation(event, rules),
        *spacing(event, state, rules),
        *velocity(event, state, rules),
        *daily_cap(event, state, rules),
        *clock_skew(event, state, rules),
        *shared_device(event, context, rules),
        *burst_after_silence(event, state, rules),
        *duplicate_payload(event, state, rules),
        *metronome(event, state, rules),
    ]
