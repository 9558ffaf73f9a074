// The queries behind the database-backed gauges (metrics/gauges.ts): grouped, one pass each.
import type { Sql } from "../database.ts";

/**
 * A cursor's lag is counted over the (topic, seq) index up to this many events per subscription,
 * so that a refresh stays bounded with many subscriptions far behind (counting up to 100,000 made
 * the refresh 686 ms on every broker every 5 s in bench (f)); past it the gauge says "at least"
 * this many, and the lag's age still tells how far behind.
 */
export const GAUGE_LAG_CAP = 10_000;

export async function selectSubscriptionGauges(sql: Sql) {
  const rows = await sql`
    SELECT s.name AS subscription, s.topic,
           (coalesce(j.backlog, 0) + coalesce(c.lag, 0))::bigint AS backlog,
           coalesce(c.lag, 0)::bigint AS cursor_lag,
           coalesce(extract(epoch FROM now() - c.oldest), 0)::float8 AS cursor_lag_age,
           (coalesce(j.in_flight, 0) + coalesce(b.in_flight, 0))::bigint AS in_flight,
           coalesce(extract(epoch FROM now() - least(j.oldest, b.oldest, c.oldest)), 0)::float8 AS oldest,
           coalesce(d.dead_letters, 0)::bigint AS dead_letters
    FROM pgmesh.subscriptions s
    LEFT JOIN LATERAL (
      SELECT (SELECT count(*) FROM (SELECT 1 FROM pgmesh.events e
                                    WHERE (e.topic_id, e.seq) > (cu.topic_id, cu.position) AND e.topic_id <= cu.topic_id
                                    LIMIT ${GAUGE_LAG_CAP}) x) AS lag,
             (SELECT e.published_at FROM pgmesh.events e
              WHERE (e.topic_id, e.seq) > (cu.topic_id, cu.position) AND e.topic_id <= cu.topic_id
              ORDER BY e.topic_id, e.seq LIMIT 1) AS oldest
      FROM pgmesh.cursors cu WHERE cu.queue = s.queue
    ) c ON true
    LEFT JOIN (
      SELECT name,
             count(*) FILTER (WHERE state < 'active') AS backlog,
             count(*) FILTER (WHERE state = 'active') AS in_flight,
             min(created_on) AS oldest
      FROM pgboss.job
      WHERE state <= 'active' AND name IN (SELECT queue FROM pgmesh.subscriptions) GROUP BY name
    ) j ON j.name = s.queue
    LEFT JOIN (
      SELECT queue, sum(bit_count(pending)) AS in_flight, min(leased_at) AS oldest
      FROM pgmesh.lease_batches GROUP BY queue
    ) b ON b.queue = s.queue
    LEFT JOIN (
      SELECT subscription, count(*) AS dead_letters FROM pgmesh.dead_letters
      WHERE redriven_at IS NULL GROUP BY subscription
    ) d ON d.subscription = s.name`;
  return rows.map((r) => ({
    subscription: r.subscription as string,
    topic: r.topic as string,
    backlog: Number(r.backlog),
    cursorLag: Number(r.cursor_lag),
    cursorLagAgeSeconds: Math.max(0, Number(r.cursor_lag_age)),
    inFlight: Number(r.in_flight),
    oldestAgeSeconds: Number(r.oldest),
    deadLetters: Number(r.dead_letters),
  }));
}

export async function selectConnections(sql: Sql) {
  const rows = await sql`
    SELECT application_name AS application, coalesce(state, 'unknown') AS state, count(*)::int AS n
    FROM pg_stat_activity
    WHERE datname = current_database() AND application_name IN ('pgmesh-broker', 'pgmesh-pgboss')
    GROUP BY 1, 2`;
  return rows.map((r) => ({
    application: r.application as string,
    state: r.state as string,
    count: r.n as number,
  }));
}

/** Every topic, for the console's overview (refreshed with the gauges). */
export async function selectTopicNames(sql: Sql) {
  const rows = await sql`SELECT name, retention_seconds FROM pgmesh.topics`;
  return rows.map((r) => ({ name: r.name as string, retentionSeconds: Number(r.retention_seconds) }));
}
