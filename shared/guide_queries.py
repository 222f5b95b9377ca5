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
