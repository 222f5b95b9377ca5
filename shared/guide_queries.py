"""Checks from docs/points-system-deployment-guide.md that the code itself runs (tests, `points chaos`)."""

# The guide's "Check user balances match ledger" query, verbatim.
BALANCE_DISCREPANCIES = """
SELECT
  u.user_id,
  u.available_points as cached_points,
  COALESCE(SUM(p.points_delta) FILTER (WHERE p.validation_status = 'validated'), 0) as ledger_points,
  u.available_points - COALESCE(SUM(p.points_delta) FILTER (WHERE p.validation_status = 'validated'), 0) as discrepancy
FROM user_points_cache u
LEFT JOIN points_events p ON p.user_id = u.user_id
GROUP BY u.user_id, u.available_points
HAVING ABS(u.available_points - COALESCE(SUM(p.points_delta) FILTER (WHERE p.validation_status = 'validated'), 0)) > 0;
"""

# "Verify coupon codes are hashed": should return 0.
UNHASHED_COUPONS = "SELECT COUNT(*) FROM coupons WHERE code_hash IS NULL;"

# "Check for stale pending events": should be low (< 100), else the validator is not keeping up.
STALE_PENDING = """
SELECT COUNT(*) FROM points_events
WHERE validation_status = 'pending'
AND created_at < now() - interval '1 hour';
"""
