-- Ordered subscriptions and attribute filters (both fixed at creation), retention of acked
-- deliveries, parked ordering keys, and an idempotency window: the (topic, source, id) key moves to
-- its own table so that keys older than the window can be forgotten while their events stay.

ALTER TABLE pgmesh.subscriptions
  ADD COLUMN ordering boolean NOT NULL DEFAULT false,
  ADD COLUMN filter text NOT NULL DEFAULT '',
  ADD COLUMN acked_retention_seconds integer NOT NULL DEFAULT 0
    CHECK (acked_retention_seconds BETWEEN 0 AND 2592000);

-- On an ordered subscription a dead-lettered keyed event stays in pg-boss as a failed job, which
-- holds back the events behind it on the same key: the key is parked until released or redriven.
ALTER TABLE pgmesh.dead_letters
  ADD COLUMN parked_job_id uuid,
  ADD COLUMN ordering_key text NOT NULL DEFAULT '';

CREATE TABLE pgmesh.event_keys (
  topic        text NOT NULL,
  source       text NOT NULL,
  id           text NOT NULL,
  published_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, source, id)
);
CREATE INDEX event_keys_published_at ON pgmesh.event_keys (published_at);
INSERT INTO pgmesh.event_keys (topic, source, id, published_at)
  SELECT topic, source, id, published_at FROM pgmesh.events;
ALTER TABLE pgmesh.events DROP CONSTRAINT events_topic_source_id_key;
CREATE INDEX events_topic_source_id ON pgmesh.events (topic, source, id);
