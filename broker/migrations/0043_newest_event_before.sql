-- The publish hand-off (issue 21, queries/publish.ts): a subscription whose cursor is at a topic's
-- newest event before a publish's own takes that publish's events in its transaction. The publish
-- statement's snapshot was taken before it waited for the topic's lock, so it may not see the events
-- of the publish it waited for; this function is VOLATILE (and plpgsql, so never inlined), and a
-- volatile function's query takes a fresh snapshot: called after the lock, it sees every event of the
-- topic that committed before it, and no later one can commit while the lock is held. `p_before` (the
-- statement's first seq on the topic) leaves out the statement's own events.
-- Keeping the newest seq on the topic's row instead (an UPDATE per publish) was measured and dropped:
-- while any session holds an old snapshot or an xid, the row's dead versions cannot be pruned, and every
-- publish to the topic walked them (0.63 ms a publish became 1.53 ms within 10 s).
CREATE FUNCTION pgmesh.newest_event_before(p_topic_id integer, p_before bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN coalesce((SELECT e.seq FROM pgmesh.events e WHERE e.topic_id = p_topic_id AND e.seq < p_before
                   ORDER BY e.seq DESC LIMIT 1), 0);
END
$$;
