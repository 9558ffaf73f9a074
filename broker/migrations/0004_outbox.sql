-- Transactional publish (outbox): an application whose database is the broker's publishes inside
-- its own transaction by calling pgmesh.outbox_publish(topic, event). The row exists if and only if
-- the transaction commits; a broker then moves it through the normal publish path (validation,
-- deduplication, fan-out) and deletes it, in one transaction. The function is the whole contract,
-- so any driver in any language can use it.

CREATE TABLE pgmesh.outbox (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  topic      text NOT NULL,
  -- A pgmesh.v1.Event, Protobuf-encoded.
  event      bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Events the relay could not publish (unknown topic, invalid event), kept for a person to look at.
CREATE TABLE pgmesh.outbox_failures (
  seq       bigint PRIMARY KEY,
  topic     text NOT NULL,
  event     bytea NOT NULL,
  error     text NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION pgmesh.outbox_publish(topic text, event bytea) RETURNS bigint
LANGUAGE sql AS $$
  -- Identical notifications in one transaction are delivered once, so a transaction that publishes
  -- many events wakes the relay once, at commit.
  SELECT pg_notify('pgmesh_outbox', '');
  INSERT INTO pgmesh.outbox (topic, event) VALUES (topic, event) RETURNING seq;
$$;
