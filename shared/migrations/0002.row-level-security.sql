-- depends: 0001.read-models
-- A signed-in user reads only their own rows; nobody but the services (the table owner) writes.
-- `request.jwt.claims.sub` is the claim the guide's security audit sets.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO authenticated;
GRANT SELECT ON points_events, user_points_cache, coupons, coupon_templates TO authenticated;

ALTER TABLE points_events     ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_points_cache ENABLE ROW LEVEL SECURITY;
ALTER TABLE coupons           ENABLE ROW LEVEL SECURITY;
ALTER TABLE coupon_templates  ENABLE ROW LEVEL SECURITY;
ALTER TABLE fraud_insights    ENABLE ROW LEVEL SECURITY;
ALTER TABLE used_nonces       ENABLE ROW LEVEL SECURITY;

CREATE POLICY own_events ON points_events FOR SELECT TO authenticated
    USING (user_id = current_setting('request.jwt.claims.sub', true));
CREATE POLICY own_balance ON user_points_cache FOR SELECT TO authenticated
    USING (user_id = current_setting('request.jwt.claims.sub', true));
CREATE POLICY own_coupons ON coupons FOR SELECT TO authenticated
    USING (user_id = current_setting('request.jwt.claims.sub', true));
CREATE POLICY active_templates ON coupon_templates FOR SELECT TO authenticated
    USING (is_active);
