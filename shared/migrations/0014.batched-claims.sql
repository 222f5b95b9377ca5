-- depends: 0013.alert-actions
-- The gateway's claims of several submissions in one statement: the requests that arrive while
-- one claim is in flight go to PostgreSQL together (one round trip, one commit), each with the
-- outcome claim_nonce would have given it alone. Submissions of one user in a batch are claimed in
-- their order, so the second sees the first (a retry in the same batch is a duplicate, and the
-- hourly count includes it). The users' locks are taken in one order (by key) before any claim,
-- so two gateways' batches cannot deadlock on each other.
CREATE FUNCTION claim_nonces(
    p_user_ids text[], p_nonces text[], p_event_ids uuid[], p_body_hashes text[], p_received_ats timestamptz[],
    p_expires_ats timestamptz[], p_records text[], p_window_starts timestamptz[], p_limit integer)
RETURNS TABLE (ord integer, outcome text, published boolean, claimed_at timestamptz, first_record jsonb,
               used bigint, oldest timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    lock_key bigint;
    earlier record;
BEGIN
    FOR lock_key IN SELECT DISTINCT hashtextextended(u, 7) FROM unnest(p_user_ids) AS u ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(lock_key);
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(p_user_ids, 1), 0) LOOP
        ord := i;
        outcome := NULL; published := NULL; claimed_at := NULL; first_record := NULL; used := NULL; oldest := NULL;
        SELECT n.body_hash, n.published_at, n.created_at, n.record INTO earlier
          FROM used_nonces n WHERE n.user_id = p_user_ids[i] AND n.nonce = p_nonces[i];
        IF FOUND THEN
            IF earlier.body_hash <> p_body_hashes[i] THEN
                outcome := 'reused';
            ELSE
                outcome := 'duplicate';
                published := earlier.published_at IS NOT NULL;
                claimed_at := earlier.created_at;
                first_record := earlier.record;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT count(*), min(n.created_at) INTO used, oldest
          FROM used_nonces n WHERE n.user_id = p_user_ids[i] AND n.created_at > p_window_starts[i];
        IF used >= p_limit THEN
            outcome := 'limited';
            RETURN NEXT;
            CONTINUE;
        END IF;
        INSERT INTO used_nonces (user_id, nonce, event_id, body_hash, created_at, expires_at, record)
        VALUES (p_user_ids[i], p_nonces[i], p_event_ids[i], p_body_hashes[i], p_received_ats[i], p_expires_ats[i],
                p_records[i]::jsonb);
        outcome := 'claimed';
        RETURN NEXT;
    END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION claim_nonces(text[], text[], uuid[], text[], timestamptz[], timestamptz[], text[],
                                       timestamptz[], integer) TO points_gateway;

-- The one-at-a-time claim (migration 0012) becomes a batch of one, so the rules live in one place;
-- a gateway of the previous version, still running during an upgrade, keeps claiming by the same rules.
CREATE OR REPLACE FUNCTION claim_nonce(
    p_user_id text, p_nonce text, p_event_id uuid, p_body_hash text, p_received_at timestamptz,
    p_expires_at timestamptz, p_record jsonb, p_window_start timestamptz, p_limit integer,
    OUT outcome text, OUT published boolean, OUT claimed_at timestamptz, OUT first_record jsonb,
    OUT used bigint, OUT oldest timestamptz)
LANGUAGE sql AS $$
    SELECT c.outcome, c.published, c.claimed_at, c.first_record, c.used, c.oldest
      FROM claim_nonces(ARRAY[p_user_id], ARRAY[p_nonce], ARRAY[p_event_id], ARRAY[p_body_hash],
                        ARRAY[p_received_at], ARRAY[p_expires_at], ARRAY[p_record::text], ARRAY[p_window_start],
                        p_limit) AS c
$$;
