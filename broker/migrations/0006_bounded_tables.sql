-- Bounded tables (issue 8): each topic keeps its events for a retention (default 7 days) unless a
-- delivery or a dead letter still needs them; the broker's upkeep deletes the rest.
ALTER TABLE pgmesh.topics
  ADD COLUMN retention_seconds integer NOT NULL DEFAULT 604800
    CHECK (retention_seconds BETWEEN 60 AND 31622400);

-- Nothing reads events by (topic, source, id) since the idempotency keys moved to their own
-- table (0003); the index cost about 80 bytes per event.
DROP INDEX pgmesh.events_topic_source_id;

-- Retention deletes old events by time: a BRIN index is a few pages for any number of events,
-- and published_at follows insertion order.
CREATE INDEX events_published_at ON pgmesh.events USING brin (published_at);

-- An event a dead letter still points at is kept past its topic's retention.
CREATE INDEX dead_letters_event_seq ON pgmesh.dead_letters (event_seq);

-- The idempotency sweep deletes keys by age, and keys are inserted in time order: a BRIN index
-- serves it at a few pages instead of a B-tree entry (~30 bytes) per key.
DROP INDEX pgmesh.event_keys_published_at;
CREATE INDEX event_keys_published_at ON pgmesh.event_keys USING brin (published_at);
