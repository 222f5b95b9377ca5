-- depends: 0011.service-roles
-- The gateway's claim on (user, nonce) in one statement, so one round trip per submission instead
-- of six (begin, lock, look up, count, insert, commit). Serialised per user by the same
-- transaction-level advisory lock; the outcomes are those of services/ingest/claims.py.
CREATE FUNCTION claim_nonce(
    p_user_id text, p_nonce text, p_event_id uuid, p_body_hash text, p_received_at timestamptz,
    p_expires_at timestamptz, p_record jsonb, p_window_start timestamptz, p_limit integer,
    OUT outcome text, OUT published boolean, OUT claimed_at timestamptz, OUT first_record jsonb,
    OUT used bigint, OUT oldest timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    earlier record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_user_id, 7));
    SELECT n.body_hash, n.published_at, n.created_at, n.record INTO earlier
      FROM used_nonces n WHERE n.user_id = p_user_id AND n.nonce = p_nonce;
    IF FOUND THEN
        IF earlier.body_hash <> p_body_hash THEN
            outcome := 'reused';
        ELSE
            outcome := 'duplicate';
            published := earlier.published_at IS NOT NULL;
            claimed_at := earlier.created_at;
            first_record := earlier.record;
        END IF;
        RETURN;
    END IF;
    SELECT count(*), min(n.created_at) INTO used, oldest
      FROM used_nonces n WHERE n.user_id = p_user_id AND n.created_at > p_window_start;
    IF used >= p_limit THEN
        outcome := 'limited';
        RETURN;
    END IF;
    INSERT INTO used_nonces (user_id, nonce, event_id, body_hash, created_at, expires_at, record)
    VALUES (p_user_id, p_nonce, p_event_id, p_body_hash, p_received_at, p_expires_at, p_record);
    outcome := 'claimed';
END
$$;

GRANT EXECUTE ON FUNCTION claim_nonce(text, text, uuid, text, timestamptz, timestamptz, jsonb, timestamptz, integer)
    TO points_gateway;
