-- Mechanism B's reader: the statement that reads one topic's batch between two ticks, built the
-- way PgQ's pgq.batch_event_sql builds it (our own code, same algorithm):
--   * a range scan over xids [start, xmax(cur)], where start is xmax(last), lowered to take in
--     the transactions that were in progress at the last tick and are done at the current one
--     when they lie within 100 of it;
--   * an IN-list of the remaining such transactions (older, long ones), so that one long
--     transaction does not widen the range scan;
--   * rows visible in the current snapshot and not in the last one.
CREATE OR REPLACE FUNCTION ordering.batch_sql(events regclass, topic text, last_tick bigint, cur_tick bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  last_snap pg_snapshot;
  cur_snap  pg_snapshot;
  range_start xid8;
  older text[] := '{}';
  x xid8;
  sql text;
BEGIN
  SELECT snapshot INTO STRICT last_snap FROM ordering.ticks WHERE tick_id = last_tick;
  SELECT snapshot INTO STRICT cur_snap FROM ordering.ticks WHERE tick_id = cur_tick;
  range_start := pg_snapshot_xmax(last_snap);
  FOR x IN
    SELECT l FROM pg_snapshot_xip(last_snap) l
    WHERE l NOT IN (SELECT c FROM pg_snapshot_xip(cur_snap) c)
    ORDER BY l DESC
  LOOP
    IF (range_start::text::bigint - 100) <= x::text::bigint THEN
      range_start := x;
    ELSE
      older := older || x::text;
    END IF;
  END LOOP;
  sql := format(
    'SELECT seq, topic, id, source, type, data, xid FROM %s ev WHERE ev.topic = %L'
    ' AND ev.xid >= %L::xid8 AND ev.xid <= %L::xid8'
    ' AND pg_visible_in_snapshot(ev.xid, %L::pg_snapshot)'
    ' AND NOT pg_visible_in_snapshot(ev.xid, %L::pg_snapshot)',
    events, topic, range_start, pg_snapshot_xmax(cur_snap), cur_snap, last_snap);
  IF cardinality(older) > 0 THEN
    sql := sql || format(
      ' UNION ALL SELECT seq, topic, id, source, type, data, xid FROM %s ev WHERE ev.topic = %L'
      ' AND ev.xid IN (%s)', events, topic,
      (SELECT string_agg(quote_literal(o) || '::xid8', ',') FROM unnest(older) o));
  END IF;
  RETURN sql || ' ORDER BY seq';
END $$;
