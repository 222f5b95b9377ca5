"""The default rules against simulated honest and abusive traffic (the figures of docs/simulation.md)."""
from services.validator.signals import RuleSet
from deploy.simulation import population, rule_sets, run


def test_the_default_rules_catch_95_percent_of_abuse_and_validate_99_percent_of_honest_events():
    result = run(population(seed=11, honest=120, days=5, scale=4), RuleSet())
    assert result.abuse_caught >= 0.95
    assert result.honest_validated >= 0.99


def test_every_kind_of_scripted_abuse_is_mostly_caught():
    result = run(population(seed=3, honest=40, days=3, scale=3), RuleSet())
    for kind in ("tap_bot", "replayer", "device_farm", "clock_cheater", "slow_farmer"):
        counts = result.by_kind[kind]
        assert counts["caught"] / counts["abusive"] >= 0.9, kind


def test_the_seeds_spacing_rule_alone_misses_most_abuse():
    events = population(seed=5, honest=40, days=3, scale=3)
    default, spacing_only = [run(events, rules) for rules in rule_sets(RuleSet())]
    assert spacing_only.abuse_caught < 0.6 < default.abuse_caught


def test_the_same_seed_gives_the_same_report():
    first = run(population(seed=9, honest=30, days=2, scale=2), RuleSet())
    again = run(population(seed=9, honest=30, days=2, scale=2), RuleSet())
    assert first.by_kind == again.by_kind
