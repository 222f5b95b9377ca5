-- depends: 0003.guide-compat-index-stats
-- A nonce row is the gateway's claim on (user, nonce): it answers retries with the first event,
-- tells a replay from a reuse by the body's hash, counts accepted events for the rate limit, and
-- keeps the submitted record until Kafka has acknowledged it, so a retry can publish it again.

ALTER TABLE used_nonces
    ADD COLUMN body_hash    text        NOT NULL,
    ADD COLUMN created_at   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN published_at timestamptz,
    ADD COLUMN record       jsonb       NOT NULL;

CREATE INDEX used_nonces_user_created ON used_nonces (user_id, created_at);
