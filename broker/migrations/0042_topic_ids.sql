-- Bytes per pending event (issue 21, target (e)): an event names its topic by a 4-byte id instead of
-- the topic's name. The name was stored in every event row and again in every entry of the cursor's
-- (topic, seq) index: 73 of the 507 bytes a pending event took in bench (e) were that index alone.
-- Ids are never reused, so a topic deleted and created again starts with no events of the old one.
ALTER TABLE pgmesh.topics ADD COLUMN id integer GENERATED ALWAYS AS IDENTITY;
ALTER TABLE pgmesh.topics ADD CONSTRAINT topics_id_key UNIQUE (id);

-- A topic's id by its name, for queries written by hand:
--   SELECT * FROM pgmesh.events WHERE topic_id = pgmesh.topic_id('orders') ORDER BY seq DESC LIMIT 10;
CREATE FUNCTION pgmesh.topic_id(p_name text) RETURNS integer
LANGUAGE sql STABLE STRICT AS $$ SELECT id FROM pgmesh.topics WHERE name = p_name $$;

ALTER TABLE pgmesh.events ADD COLUMN topic_id integer;
-- Events of a topic deleted earlier (nothing reads them: their subscriptions, and so their dead
-- letters, went first) get 0, which no topic has.
UPDATE pgmesh.events e SET topic_id = coalesce((SELECT t.id FROM pgmesh.topics t WHERE t.name = e.topic), 0);
ALTER TABLE pgmesh.events ALTER COLUMN topic_id SET NOT NULL;
DROP INDEX pgmesh.events_topic_seq;
CREATE INDEX events_topic_seq ON pgmesh.events (topic_id, seq);
ALTER TABLE pgmesh.events DROP COLUMN topic;

-- The cursor compares (topic_id, position) with the index; it keeps the topic's name for the events
-- it reads (and for retention's per-topic lookups).
ALTER TABLE pgmesh.cursors ADD COLUMN topic_id integer;
UPDATE pgmesh.cursors c SET topic_id = coalesce((SELECT t.id FROM pgmesh.topics t WHERE t.name = c.topic), 0);
ALTER TABLE pgmesh.cursors ALTER COLUMN topic_id SET NOT NULL;

CREATE OR REPLACE FUNCTION pgmesh.first_event_at_or_after(p_topic text, p_time timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
  topic integer := pgmesh.topic_id(p_topic);
  lo bigint;
  hi bigint;
  mid bigint;
  at timestamptz;
BEGIN
  SELECT seq INTO lo FROM pgmesh.events WHERE topic_id = topic ORDER BY seq LIMIT 1;
  SELECT seq, published_at INTO hi, at FROM pgmesh.events WHERE topic_id = topic ORDER BY seq DESC LIMIT 1;
  IF lo IS NULL OR at < p_time THEN
    RETURN NULL;
  END IF;
  -- The smallest x in [lo, hi] whose first event at or after it was published at or after p_time.
  WHILE lo < hi LOOP
    mid := lo + (hi - lo) / 2;
    SELECT published_at INTO at FROM pgmesh.events WHERE topic_id = topic AND seq >= mid ORDER BY seq LIMIT 1;
    IF at >= p_time THEN
      hi := mid;
    ELSE
      lo := mid + 1;
    END IF;
  END LOOP;
  RETURN (SELECT seq FROM pgmesh.events WHERE topic_id = topic AND seq >= lo ORDER BY seq LIMIT 1);
END
$$;

-- An event without attributes stores NULL, not '{}' (reads give {} back): the empty object took 5
-- bytes, and with the alignment of the columns after it 8 bytes of every such event row.
ALTER TABLE pgmesh.events ALTER COLUMN attributes DROP NOT NULL, ALTER COLUMN attributes DROP DEFAULT;
