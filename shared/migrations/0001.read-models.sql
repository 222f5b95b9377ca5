-- Read models projected from the Kafka log. Names follow the deployment guide so that its
-- verification, monitoring and troubleshooting SQL runs as written.

CREATE TABLE points_events (
    -- The default lets the guide's manual-award SQL run as written; the log's records bring their own id.
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              text        NOT NULL,
    event_type           text        NOT NULL,
    event_time           timestamptz NOT NULL,
    points_delta         integer     NOT NULL,
    proof_type           text        NOT NULL DEFAULT 'none',
    validation_status    text        NOT NULL
        CHECK (validation_status IN ('pending', 'validated', 'rejected', 'pending_review')),
    trust_score          integer     CHECK (trust_score BETWEEN 0 AND 100),
    reasons              text[]      NOT NULL DEFAULT '{}',
    rule_set             text,
    validated_by         text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    decided_at           timestamptz,
    related_entity_type  text,
    related_entity_id    text,
    -- Kafka position of the record that last wrote this row, for tracing and replay checks.
    source_topic         text,
    source_partition     integer,
    source_offset        bigint
);
CREATE INDEX points_events_user_time ON points_events (user_id, event_time DESC, id DESC);
CREATE INDEX points_events_status_created ON points_events (validation_status, created_at);

CREATE TABLE user_points_cache (
    user_id           text PRIMARY KEY,
    available_points  integer     NOT NULL DEFAULT 0 CHECK (available_points >= 0),
    pending_points    integer     NOT NULL DEFAULT 0,
    lifetime_earned   integer     NOT NULL DEFAULT 0,
    lifetime_spent    integer     NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coupon_templates (
    template_id  uuid PRIMARY KEY,
    name         text        NOT NULL,
    partner      text        NOT NULL,
    points_cost  integer     NOT NULL CHECK (points_cost > 0),
    valid_days   integer     NOT NULL DEFAULT 30 CHECK (valid_days > 0),
    is_active    boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coupons (
    coupon_id           uuid PRIMARY KEY,
    user_id             text        NOT NULL,
    template_id         uuid        NOT NULL REFERENCES coupon_templates (template_id),
    code_hash           text        NOT NULL UNIQUE,
    code_key_id         text        NOT NULL DEFAULT 'k1',
    -- Kept only so the guide's security query runs; plaintext codes are never stored.
    plaintext_code      text        CHECK (plaintext_code IS NULL),
    status              text        NOT NULL CHECK (status IN ('issued', 'redeemed', 'revoked', 'expired')),
    issued_points_cost  integer     NOT NULL,
    issued_at           timestamptz NOT NULL,
    expires_at          timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX coupons_user ON coupons (user_id, issued_at DESC);

CREATE TABLE fraud_insights (
    id            uuid PRIMARY KEY,
    user_id       text        NOT NULL,
    event_id      uuid,
    insight_type  text        NOT NULL,
    severity      text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    score         integer     NOT NULL,
    evidence      jsonb       NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fraud_insights_created ON fraud_insights (created_at DESC);

CREATE TABLE used_nonces (
    user_id     text        NOT NULL,
    nonce       text        NOT NULL,
    event_id    uuid        NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, nonce)
);
CREATE INDEX used_nonces_expiry ON used_nonces (expires_at);

-- The projector's Kafka positions, written in the same transaction as the rows they produced.
CREATE TABLE projector_offsets (
    consumer_group  text    NOT NULL,
    topic           text    NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint  NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition)
);

-- The balance is always derived from the ledger rows, never adjusted on its own.
CREATE FUNCTION refresh_user_points_cache(p_user_id text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO user_points_cache AS c
        (user_id, available_points, pending_points, lifetime_earned, lifetime_spent, updated_at)
    SELECT p_user_id,
           COALESCE(SUM(points_delta) FILTER (WHERE validation_status = 'validated'), 0),
           COALESCE(SUM(points_delta) FILTER (WHERE validation_status IN ('pending', 'pending_review')
                                                AND points_delta > 0), 0),
           COALESCE(SUM(points_delta) FILTER (WHERE validation_status = 'validated' AND points_delta > 0
                                                AND event_type <> 'coupon_refund'), 0),
           COALESCE(-SUM(points_delta) FILTER (WHERE validation_status = 'validated'
                                                 AND event_type = 'coupon_redemption'), 0)
             - COALESCE(SUM(points_delta) FILTER (WHERE validation_status = 'validated'
                                                   AND event_type = 'coupon_refund'), 0),
           now()
    FROM points_events
    WHERE user_id = p_user_id
    ON CONFLICT (user_id) DO UPDATE
       SET available_points = EXCLUDED.available_points,
           pending_points   = EXCLUDED.pending_points,
           lifetime_earned  = EXCLUDED.lifetime_earned,
           lifetime_spent   = EXCLUDED.lifetime_spent,
           updated_at       = EXCLUDED.updated_at;
$$;
