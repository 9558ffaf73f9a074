-- pgmesh's own tables, beside pg-boss's schema. pg-boss holds one job per (event, subscription):
-- the delivery state. These tables hold what pg-boss does not: the topics, the subscriptions that
-- fan a topic out, and each event's envelope and payload, stored once however many subscriptions
-- receive it.

CREATE TABLE pgmesh.topics (
  name       text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pgmesh.subscriptions (
  name                 text PRIMARY KEY,
  topic                text NOT NULL REFERENCES pgmesh.topics (name),
  -- The pg-boss queue that holds this subscription's deliveries.
  queue                text NOT NULL UNIQUE,
  ack_deadline_seconds integer NOT NULL CHECK (ack_deadline_seconds BETWEEN 1 AND 3600),
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_topic ON pgmesh.subscriptions (topic);

CREATE TABLE pgmesh.events (
  -- Internal key carried by the pg-boss jobs; the producer's id is not unique on its own.
  seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic         text NOT NULL,
  id            text NOT NULL,
  source        text NOT NULL,
  type          text NOT NULL,
  subject       text NOT NULL DEFAULT '',
  time          timestamptz,
  attributes    jsonb NOT NULL DEFAULT '{}',
  ordering_key  text NOT NULL DEFAULT '',
  data_type_url text NOT NULL DEFAULT '',
  data          bytea NOT NULL DEFAULT '',
  published_at  timestamptz NOT NULL DEFAULT now(),
  -- The idempotency key: publishing the same source + id on a topic again stores nothing.
  UNIQUE (topic, source, id)
);
