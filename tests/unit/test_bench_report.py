"""How `points bench` reads artillery's report and states the guide's error rate."""
from __future__ import annotations

from datetime import datetime, timezone

from deploy.bench import BenchReport, LoadRun, Timings, quantile


def aggregate(counters: dict) -> dict:
    return {"counters": counters, "summaries": {"http.response_time": {"median": 12, "p95": 40, "p99": 80}}}


def test_a_refusal_for_want_of_points_is_an_answer_but_a_5xx_or_a_transport_error_is_not():
    load = LoadRun("x", aggregate({"http.requests": 10, "http.codes.201": 1, "http.codes.409": 6,
                                   "http.codes.503": 2, "errors.ETIMEDOUT": 1}), cpu=[])
    assert load.codes() == {"201": 1, "409": 6, "503": 2}
    assert load.errors == 3


def test_quantiles_interpolate_so_a_small_sample_does_not_report_its_maximum_as_p95():
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.5) == 50.5 and round(quantile(values, 0.95), 2) == 95.05
    twenty = [float(v) for v in range(1, 21)]
    assert quantile(twenty, 0.95) < max(twenty)
    assert quantile([3.0], 0.99) == 3.0


def test_the_report_states_each_measure_as_a_ratio_to_the_http_floor_of_the_same_run():
    report = BenchReport(started=datetime(2026, 11, 26, tzinfo=timezone.utc),
                         serial=[Timings("GET /healthz", [0.001, 0.002, 0.002]),
                                 Timings("POST /v1/events", [0.010, 0.020, 0.020])],
                         loads=[LoadRun("events", aggregate({"http.requests": 5, "http.codes.202": 5}), cpu=[4.0, 9.5])],
                         checks={"events: p95 latency < 500 ms": True})
    text = report.markdown()
    assert "| POST /v1/events | 20.0 | 20.0 | 10.0x |" in text
    assert "| events | 5 | 202: 5 | 0 | 12 | 40 | 80 | 10 % of the machine |" in text
    assert report.passed


def test_a_throughput_step_breaks_on_a_slow_tail_on_errors_or_on_falling_behind_the_offered_rate():
    from deploy.knee import Step

    def step(accepted: int, errors: int, p99: float) -> Step:
        return Step("x", offered=100, seconds=10, accepted=accepted, errors=errors, latencies=[0.01] * 98 + [p99] * 2)

    assert not step(1000, 0, 0.2).broken
    assert step(1000, 0, 1.5).broken  # p99 over a second
    assert step(1000, 20, 0.2).broken  # 2 % errors
    assert step(800, 0, 0.2).broken  # 80 ev/s of the 100 offered


def test_cpu_per_event_is_each_process_share_of_the_accepted_events():
    from deploy.knee import KneeReport, Step

    done = Step("100/s", 100, 10, accepted=1000, latencies=[0.01] * 100, decisions=[0.05] * 10,
                cpu_ms={"kafka": 4000.0, "ingest": 2000.0, "load generator": 900.0})
    report = KneeReport(datetime(2026, 11, 27, tzinfo=timezone.utc), 2, 2000.0, 20000.0, 30000.0, [done], None)

    assert done.cpu_per_event() == {"kafka": 4.0, "ingest": 2.0, "load generator": 0.9}
    assert "| 100/s | 100 | 100 | 10 | 10 | 0 | 50 | 50 | 0.0 | 6.0 | no |" in report.markdown()


def test_the_goals_table_says_which_of_the_issues_goals_a_run_met():
    from deploy.knee import KneeReport, Step

    fast = Step("1000/s", 1000, 60, accepted=60_000, latencies=[0.01] * 100, decisions=[0.3] * 10,
                drain_seconds=1.0, cpu_ms={"kafka": 30_000.0, "ingest": 50_000.0, "load generator": 9_000.0})
    slow_burst = Step("100-users-at-once", 0, 11, accepted=1000, latencies=[0.01] * 90 + [0.2] * 10)
    report = KneeReport(datetime(2026, 11, 27, tzinfo=timezone.utc), 2, 2000.0, 20000.0, 30000.0, [fast],
                        slow_burst)

    cpu, sustained, burst, redemptions = [(figure, met) for _, figure, met in report.goals(80.0)]

    assert cpu == ("1.33 at 1000/s", True)
    assert sustained[1] is True
    assert burst == ("p95 200 ms, 0 errors", False)
    assert redemptions == ("p95 80 ms", True)
    assert "| the guide's redemptions (50 concurrent): p95 < 100 ms | p95 80 ms | yes |" in report.markdown(80.0)


def test_a_rate_the_run_never_reached_is_a_goal_not_met():
    from deploy.knee import KneeReport, Step

    broke = Step("500/s", 500, 20, accepted=5000, latencies=[2.0] * 100)
    report = KneeReport(datetime(2026, 11, 27, tzinfo=timezone.utc), 2, 2000.0, 20000.0, 30000.0, [broke], None)

    assert [(figure, met) for _, figure, met in report.goals(None)] == [
        ("no step kept up", False), ("not reached (an earlier step broke)", False)]
