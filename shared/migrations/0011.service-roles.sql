-- depends: 0010.bigint-points
-- Least privilege: each service logs in as its own role with only the grants it needs. The
-- projector alone writes the projections; the gateway reads them (user reads as `authenticated`,
-- under row-level security) and owns its claim and configuration tables. Whoever runs migrations
-- (the owner) keeps everything else; nobody else can write a read model.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'points_projector') THEN
        CREATE ROLE points_projector LOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'points_gateway') THEN
        CREATE ROLE points_gateway LOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO points_projector, points_gateway;

-- The projector: the projections and its own offsets, and the guide's checks behind the gauges.
GRANT SELECT, INSERT, UPDATE ON points_events, user_points_cache, coupons, fraud_insights, command_answers,
    projector_offsets TO points_projector;
GRANT EXECUTE ON FUNCTION refresh_user_points_cache(text) TO points_projector;

-- The gateway: reads of the projections, and the tables that are its own.
GRANT SELECT ON points_events, user_points_cache, coupons, fraud_insights, command_answers TO points_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON used_nonces, idempotency_keys, feature_flags, feature_flag_changes,
    attestation_challenges, device_keys, merchant_failed_attempts TO points_gateway;
GRANT SELECT, INSERT, UPDATE ON coupon_templates TO points_gateway;
GRANT USAGE ON SEQUENCE feature_flag_changes_id_seq TO points_gateway;
-- User reads run as `authenticated`, so row-level security (not only the query) scopes them.
GRANT authenticated TO points_gateway;

-- Row-level security denies a role no policy names; these name the services' roles.
CREATE POLICY projector_writes ON points_events     FOR ALL TO points_projector USING (true) WITH CHECK (true);
CREATE POLICY projector_writes ON user_points_cache FOR ALL TO points_projector USING (true) WITH CHECK (true);
CREATE POLICY projector_writes ON coupons           FOR ALL TO points_projector USING (true) WITH CHECK (true);
CREATE POLICY projector_writes ON fraud_insights    FOR ALL TO points_projector USING (true) WITH CHECK (true);
CREATE POLICY gateway_reads ON points_events     FOR SELECT TO points_gateway USING (true);
CREATE POLICY gateway_reads ON user_points_cache FOR SELECT TO points_gateway USING (true);
CREATE POLICY gateway_reads ON coupons           FOR SELECT TO points_gateway USING (true);
CREATE POLICY gateway_reads ON fraud_insights    FOR SELECT TO points_gateway USING (true);
CREATE POLICY gateway_manages ON coupon_templates FOR ALL TO points_gateway USING (true) WITH CHECK (true);
CREATE POLICY gateway_claims ON used_nonces       FOR ALL TO points_gateway USING (true) WITH CHECK (true);

-- Dashboards and analysts: the read models, read-only (Grafana's PostgreSQL data source).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'points_reader') THEN
        CREATE ROLE points_reader LOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO points_reader;
GRANT SELECT ON points_events, user_points_cache, coupons, coupon_templates, fraud_insights, command_answers
    TO points_reader;
CREATE POLICY reader_reads ON points_events     FOR SELECT TO points_reader USING (true);
CREATE POLICY reader_reads ON user_points_cache FOR SELECT TO points_reader USING (true);
CREATE POLICY reader_reads ON coupons           FOR SELECT TO points_reader USING (true);
CREATE POLICY reader_reads ON coupon_templates  FOR SELECT TO points_reader USING (true);
CREATE POLICY reader_reads ON fraud_insights    FOR SELECT TO points_reader USING (true);
