"""The CI-sized fault-injection run: every fault once, under load, then the invariants."""
from __future__ import annotations

import pytest

from deploy import chaos
from tests.helpers import skip_unless_the_stack_runs

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
async def test_nothing_acknowledged_is_lost_or_counted_twice_whatever_fails(stack):
    skip_unless_the_stack_runs(stack, "kafka", "postgres")  # the faults restart both
    report = await chaos.run(stack, users=12, spenders=4, gap_seconds=4, pause_seconds=13,
                             echo=lambda msg: print(f"[chaos] {msg}", flush=True))
    print(report.markdown())
    assert report.tally.client_errors == []
    assert len(report.tally.events_acked) > 100 and report.tally.coupons_acked
    assert [f.name for f in report.faults] == list(chaos.FAULTS)
    for invariant, holds in report.checks.items():
        assert holds, invariant
