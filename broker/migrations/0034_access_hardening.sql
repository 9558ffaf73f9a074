-- Access hardening (issue 20).
--
-- Source binding by default: a principal created without sources now publishes as its own name
-- only, and an empty list means no source at all (it was "any"). Principals that exist already
-- keep what they could do, written out as '*', so that nothing breaks on upgrade; narrow them with
-- the CLI (delete and re-create with --source) when convenient.
UPDATE pgmesh.principals SET sources = '{*}' WHERE sources = '{}';
ALTER TABLE pgmesh.principals ALTER COLUMN sources DROP DEFAULT;

-- The token registered from PGMESH_ADMIN_TOKEN (or its file): when the configured token changes,
-- the broker revokes the previous one at start, so rotating the setting revokes the old token.
ALTER TABLE pgmesh.tokens ADD COLUMN from_environment boolean NOT NULL DEFAULT false;
UPDATE pgmesh.tokens SET from_environment = true WHERE description = 'from PGMESH_ADMIN_TOKEN';

-- Every change to principals and tokens notifies pgmesh_access_changed after its commit, the
-- broker's own statements (which notify too: Postgres folds identical notices of one transaction
-- into one) and an operator's SQL alike. Brokers then forget what they cached and re-check their
-- open streams, so a grant taken away by hand ends the streams it allowed.
CREATE FUNCTION pgmesh.notify_access_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pgmesh_access_changed', '');
  RETURN NULL;
END;
$$;

CREATE TRIGGER principals_changed
  AFTER INSERT OR UPDATE OR DELETE ON pgmesh.principals
  FOR EACH STATEMENT EXECUTE FUNCTION pgmesh.notify_access_changed();
CREATE TRIGGER tokens_changed
  AFTER INSERT OR UPDATE OR DELETE ON pgmesh.tokens
  FOR EACH STATEMENT EXECUTE FUNCTION pgmesh.notify_access_changed();
