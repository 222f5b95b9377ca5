-- depends: 0004.nonce-claims
-- The kill switch and the canary rollout, and who changed them when. Every gateway polls the row.

CREATE TABLE feature_flags (
    id                     boolean PRIMARY KEY DEFAULT true CHECK (id),
    points_system_enabled  boolean     NOT NULL DEFAULT true,
    rollout_percent        integer     NOT NULL DEFAULT 100 CHECK (rollout_percent BETWEEN 0 AND 100),
    updated_by             text        NOT NULL DEFAULT 'system',
    updated_at             timestamptz NOT NULL DEFAULT now()
);
INSERT INTO feature_flags DEFAULT VALUES;

CREATE TABLE feature_flag_changes (
    id                     bigserial PRIMARY KEY,
    points_system_enabled  boolean     NOT NULL,
    rollout_percent        integer     NOT NULL,
    changed_by             text        NOT NULL,
    changed_at             timestamptz NOT NULL DEFAULT now()
);
