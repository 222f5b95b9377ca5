-- depends: 0006.device-attestation
-- Coupons and redemptions as projected from the log, and the gateway's idempotency keys.

-- Projections must rebuild from the log alone, so a coupon does not depend on the template
-- rows (admin configuration) being there first.
ALTER TABLE coupons DROP CONSTRAINT coupons_template_id_fkey;
ALTER TABLE coupons ADD COLUMN redemption_id uuid, ADD COLUMN used_by text, ADD COLUMN revoked_by text;

-- Every command the redeemer answered, for polling a redemption that outlived its request.
CREATE TABLE command_answers (
    command_id   uuid PRIMARY KEY,
    user_id      text        NOT NULL,
    command      text        NOT NULL,
    outcome      text        NOT NULL,
    detail       jsonb       NOT NULL,
    answered_at  timestamptz NOT NULL
);
CREATE INDEX command_answers_user ON command_answers (user_id, answered_at DESC);

-- A client's Idempotency-Key: the request it named and, once known, the answer (never a code).
CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    command_id    uuid        NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Failed code lookups per merchant, so codes cannot be found by trying many.
CREATE TABLE merchant_failed_attempts (
    merchant      text        NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_failed_attempts_recent ON merchant_failed_attempts (merchant, attempted_at);
