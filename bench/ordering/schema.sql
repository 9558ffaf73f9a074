-- Three tables shaped like pgmesh.events (migrations 0001, 0002, 0006, 0032): the same columns,
-- the seq primary key and the BRIN index on published_at. Each mechanism adds only what it needs.
DROP SCHEMA IF EXISTS ordering CASCADE;
CREATE SCHEMA ordering;
SET search_path = ordering;

-- Plain: today's table, neither mechanism.
CREATE TABLE events_plain (
  seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic         text NOT NULL,
  id            text NOT NULL,
  source        text NOT NULL,
  type          text NOT NULL,
  subject       text NOT NULL DEFAULT '',
  time          timestamptz,
  attributes    jsonb NOT NULL DEFAULT '{}',
  ordering_key  text NOT NULL DEFAULT '',
  data_type_url text,
  data          bytea NOT NULL DEFAULT '',
  published_at  timestamptz NOT NULL DEFAULT now(),
  deliver_after timestamptz
);
CREATE INDEX events_plain_published_at ON events_plain USING brin (published_at);

-- A: commit-ordered positions per topic (message-db). A per-topic counter row, locked by the
-- publish's UPDATE until commit; the events carry the positions it handed out.
CREATE TABLE topic_heads (topic text PRIMARY KEY, position bigint NOT NULL DEFAULT 0);
CREATE TABLE events_a (LIKE events_plain INCLUDING DEFAULTS, position bigint NOT NULL);
ALTER TABLE events_a ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY, ADD PRIMARY KEY (seq);
CREATE INDEX events_a_published_at ON events_a USING brin (published_at);
CREATE UNIQUE INDEX events_a_topic_position ON events_a (topic, position);

-- B: snapshot batches (PgQ). Each event stores its transaction's id; a ticker stores snapshots.
CREATE TABLE events_b (LIKE events_plain INCLUDING DEFAULTS, xid xid8 NOT NULL DEFAULT pg_current_xact_id());
ALTER TABLE events_b ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY, ADD PRIMARY KEY (seq);
CREATE INDEX events_b_published_at ON events_b USING brin (published_at);
CREATE INDEX events_b_topic_xid ON events_b (topic, xid);
CREATE TABLE ticks (
  tick_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tick_time timestamptz NOT NULL DEFAULT now(),
  snapshot pg_snapshot NOT NULL DEFAULT pg_current_snapshot()
);

INSERT INTO topic_heads (topic) SELECT 't' || g FROM generate_series(1, 10) g;
