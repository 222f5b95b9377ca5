-- depends: 0014.batched-claims
-- The projector refreshes every user a batch touched in one statement: one plan and one pass over
-- their rows, where calling refresh_user_points_cache once per user planned and ran its INSERT for
-- each (two refreshes per event, half the projector's time in PostgreSQL at 750 ev/s). The sums
-- live here only; the one-user function the guide's SQL calls is a batch of one. A user with no
-- events gets a row of zeros, as before.
CREATE FUNCTION refresh_user_points_caches(p_user_ids text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO user_points_cache AS c
        (user_id, available_points, pending_points, lifetime_earned, lifetime_spent, updated_at)
    SELECT u.user_id,
           COALESCE(SUM(e.points_delta) FILTER (WHERE e.validation_status = 'validated'), 0),
           COALESCE(SUM(e.points_delta) FILTER (WHERE e.validation_status IN ('pending', 'pending_review')
                                                  AND e.points_delta > 0), 0),
           COALESCE(SUM(e.points_delta) FILTER (WHERE e.validation_status = 'validated' AND e.points_delta > 0
                                                  AND e.event_type <> 'coupon_refund'), 0),
           COALESCE(-SUM(e.points_delta) FILTER (WHERE e.validation_status = 'validated'
                                                   AND e.event_type = 'coupon_redemption'), 0)
             - COALESCE(SUM(e.points_delta) FILTER (WHERE e.validation_status = 'validated'
                                                     AND e.event_type = 'coupon_refund'), 0),
           now()
    FROM (SELECT DISTINCT unnest(p_user_ids) AS user_id) AS u
    LEFT JOIN points_events e ON e.user_id = u.user_id
    GROUP BY u.user_id
    -- Rows locked in one order, as the per-user calls over a sorted list did, so two batches cannot deadlock.
    ORDER BY u.user_id
    ON CONFLICT (user_id) DO UPDATE
       SET available_points = EXCLUDED.available_points,
           pending_points   = EXCLUDED.pending_points,
           lifetime_earned  = EXCLUDED.lifetime_earned,
           lifetime_spent   = EXCLUDED.lifetime_spent,
           updated_at       = EXCLUDED.updated_at;
$$;

CREATE OR REPLACE FUNCTION refresh_user_points_cache(p_user_id text) RETURNS void
LANGUAGE sql AS $$
    SELECT refresh_user_points_caches(ARRAY[p_user_id]);
$$;

GRANT EXECUTE ON FUNCTION refresh_user_points_caches(text[]) TO points_projector;
