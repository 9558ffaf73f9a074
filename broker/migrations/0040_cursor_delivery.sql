-- Delivery core v2 (docs/design/cursor-delivery.md): a subscription's backlog not yet leased is a
-- cursor over its topic's events instead of a pg-boss job per (event, subscription) written at
-- publish. pg-boss keeps every delivery that has a schedule of its own (a lease in flight, a retry,
-- a delayed event, an ordered key's later events, a parked key, a redrive).
--
-- Why a cursor over `seq` is safe: every publish locks its topics' rows (FOR NO KEY UPDATE, in name
-- order) before it takes any seq, and keeps the lock until it commits. So within a topic, seq order
-- is commit order: a reader that sees an event of a topic also sees every earlier-seq event of that
-- topic that will ever commit (message-db's per-stream lock; the xmin rule would let any long
-- transaction on the server hold delivery back: docs/design/cursor-delivery.md).

-- The cursor read: a topic's events in seq order after a position.
CREATE INDEX events_topic_seq ON pgmesh.events (topic, seq);

-- One row per subscription incarnation (its pg-boss queue): every event of `topic` with
-- seq <= position has been leased, scheduled or skipped by the filter.
CREATE TABLE pgmesh.cursors (
  queue     text PRIMARY KEY REFERENCES pgmesh.subscriptions (queue) ON DELETE CASCADE,
  topic     text NOT NULL,
  position  bigint NOT NULL
) WITH (fillfactor = 50);
-- Rewritten at every lease: HOT updates need free room on the page (fillfactor 50).

-- Existing subscriptions keep the jobs already queued for them; their cursors start at the head.
INSERT INTO pgmesh.cursors (queue, topic, position)
SELECT s.queue, s.topic,
       coalesce((SELECT max(e.seq) FROM pgmesh.events e WHERE e.topic = s.topic), 0)
FROM pgmesh.subscriptions s;

-- The publish statement no longer routes to subscriptions, so it has no routing list to check.
DROP FUNCTION pgmesh.assert_publish_catalog(boolean);

-- A seek to a time: the first event of the topic published at or after it. published_at rises with
-- seq within a topic (the publish statement stamps clock_timestamp() after taking the topic's lock),
-- so a binary search over seq, an index probe per step (about 30 for any table), instead of a scan.
CREATE FUNCTION pgmesh.first_event_at_or_after(p_topic text, p_time timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lo bigint;
  hi bigint;
  mid bigint;
  at timestamptz;
BEGIN
  SELECT seq INTO lo FROM pgmesh.events WHERE topic = p_topic ORDER BY seq LIMIT 1;
  SELECT seq, published_at INTO hi, at FROM pgmesh.events WHERE topic = p_topic ORDER BY seq DESC LIMIT 1;
  IF lo IS NULL OR at < p_time THEN
    RETURN NULL;
  END IF;
  -- The smallest x in [lo, hi] whose first event at or after it was published at or after p_time.
  WHILE lo < hi LOOP
    mid := lo + (hi - lo) / 2;
    SELECT published_at INTO at FROM pgmesh.events WHERE topic = p_topic AND seq >= mid ORDER BY seq LIMIT 1;
    IF at >= p_time THEN
      hi := mid;
    ELSE
      lo := mid + 1;
    END IF;
  END LOOP;
  RETURN (SELECT seq FROM pgmesh.events WHERE topic = p_topic AND seq >= lo ORDER BY seq LIMIT 1);
END
$$;

-- The first seq retention has not deleted (0: it never deleted anything): a seek or a start
-- position before it is refused, since the events it would replay are gone.
ALTER TABLE pgmesh.topics ADD COLUMN retained_from bigint NOT NULL DEFAULT 0;
