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
