-- depends: 0009.events-created-index
-- Points in bigint: a balance that outgrows int4 would make the projector refuse a ledger record the
-- redeemer had already counted, and the two would disagree.
ALTER TABLE points_events     ALTER COLUMN points_delta TYPE bigint;
ALTER TABLE user_points_cache ALTER COLUMN available_points TYPE bigint,
                              ALTER COLUMN pending_points TYPE bigint,
                              ALTER COLUMN lifetime_earned TYPE bigint,
                              ALTER COLUMN lifetime_spent TYPE bigint;
ALTER TABLE coupon_templates  ALTER COLUMN points_cost TYPE bigint;
ALTER TABLE coupons           ALTER COLUMN issued_points_cost TYPE bigint;
