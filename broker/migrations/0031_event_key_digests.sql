-- Idempotency keys as 128-bit digests (issue 8, bytes per pending event). A key row held the
-- topic, source and id as text, with a B-tree over all three: about 160 bytes per event, a fifth
-- of a pending event's share of the tables. A digest of the three is 16 bytes, so the row and its
-- index entry are fixed and small (about 95 bytes per event) and comparing keys is comparing uuids.
--
-- The digest is SHA-256, cut to 128 bits: no two keys meet by chance (at 2^32 keys the odds are
-- about 2^-64), nor by design (finding another key with a given digest is a preimage search).
-- Each part is prefixed with its length, so no two (topic, source, id) triples encode alike.
-- The event keeps its topic, source and id in pgmesh.events.
CREATE FUNCTION pgmesh.event_key_digest(topic text, source text, id text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT encode(substr(sha256(convert_to(
    length(topic) || ':' || topic || length(source) || ':' || source || id, 'UTF8')), 1, 16), 'hex')::uuid
$$;

CREATE TABLE pgmesh.event_key_digests (
  digest       uuid PRIMARY KEY,
  published_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pgmesh.event_key_digests (digest, published_at)
  SELECT pgmesh.event_key_digest(topic, source, id), published_at FROM pgmesh.event_keys;
DROP TABLE pgmesh.event_keys;
ALTER TABLE pgmesh.event_key_digests RENAME TO event_keys;
ALTER INDEX pgmesh.event_key_digests_pkey RENAME TO event_keys_pkey;
-- The window's sweep deletes keys by age; keys go in in time order (see 0006).
CREATE INDEX event_keys_published_at ON pgmesh.event_keys USING brin (published_at);
