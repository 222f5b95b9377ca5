-- depends: 0005.feature-flags
-- Server-issued attestation challenges (single use, short-lived) and the device keys they attested.

CREATE TABLE attestation_challenges (
    challenge   bytea       PRIMARY KEY,
    user_id     text        NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE device_keys (
    key_id        bytea       PRIMARY KEY,
    user_id       text        NOT NULL,
    platform      text        NOT NULL,
    environment   text        NOT NULL,
    public_key    bytea       NOT NULL,
    receipt       bytea,
    -- App Attest's assertion counter: each request must carry a larger one.
    counter       bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX device_keys_user ON device_keys (user_id);
