// Named queries of the table upkeep (upkeep.ts): statistics, retention and the idempotency window.
import type { Sql } from "../database.ts";

export interface TableActivity {
  /** schema-qualified, quoted: ready to be put in a statement. */
  table: string;
  live: number;
  dead: number;
  modifiedSinceAnalyze: number;
}

/**
 * pgmesh's hot tables and the pg-boss job tables of its subscriptions, with what changed in them
 * since their last ANALYZE and how many dead rows they hold (from the statistics collector, which
 * lags by about a second).
 */
export async function selectTableActivity(sql: Sql): Promise<TableActivity[]> {
  const rows = await sql`
    SELECT quote_ident(t.schemaname) || '.' || quote_ident(t.relname) AS tbl,
           t.n_live_tup::bigint AS live, t.n_dead_tup::bigint AS dead,
           t.n_mod_since_analyze::bigint AS modified
    FROM pg_stat_user_tables t
    WHERE (t.schemaname = 'pgmesh' AND t.relname IN ('events', 'event_keys', 'dead_letters', 'delivery_failures', 'cursors', 'lease_batches'))
       OR (t.schemaname = 'pgboss' AND t.relname IN (
             SELECT q.table_name FROM pgboss.queue q JOIN pgmesh.subscriptions s ON s.queue = q.name))`;
  return rows.map((r) => ({
    table: r.tbl as string,
    live: Number(r.live),
    dead: Number(r.dead),
    modifiedSinceAnalyze: Number(r.modified),
  }));
}

/** Deletes up to `limit` idempotency keys older than the window; returns how many. */
export async function deleteEventKeysOlderThan(sql: Sql, seconds: number, limit: number): Promise<number> {
  const rows = await sql`
    DELETE FROM pgmesh.event_keys WHERE ctid IN (
      SELECT ctid FROM pgmesh.event_keys WHERE published_at < now() - ${seconds} * interval '1 second' LIMIT ${limit})
    RETURNING 1`;
  return rows.length;
}

/** Deletes up to `limit` audit log rows older than `days` (by the `at` index); returns how many. */
export async function deleteAuditOlderThan(sql: Sql, days: number, limit: number): Promise<number> {
  const rows = await sql`
    DELETE FROM pgmesh.audit_log WHERE id IN (
      SELECT id FROM pgmesh.audit_log WHERE at < now() - ${days} * interval '1 day' LIMIT ${limit})
    RETURNING 1`;
  return rows.length;
}

/** Topics that hold events older than their retention. */
export async function selectTopicsPastRetention(sql: Sql): Promise<{ topic: string; cutoff: Date }[]> {
  const rows = await sql`
    SELECT t.name, now() - t.retention_seconds * interval '1 second' AS cutoff
    FROM pgmesh.topics t
    WHERE EXISTS (SELECT 1 FROM pgmesh.events e
                  WHERE e.topic_id = t.id AND e.published_at < now() - t.retention_seconds * interval '1 second')`;
  return rows.map((r) => ({ topic: r.name as string, cutoff: r.cutoff as Date }));
}

/**
 * The oldest event of the topic that a subscription still needs: one its cursor has not passed, or
 * one a delivery names (pending, in flight in a job or a leased batch, waiting for a retry, or
 * parked on an ordered subscription). Undefined when none does.
 */
export async function selectOldestNeededEvent(sql: Sql, topic: string): Promise<string | undefined> {
  const [row] = await sql`
    SELECT least(
      (SELECT min((j.data ->> 'e')::bigint)
       FROM pgmesh.subscriptions s JOIN pgboss.job j ON j.name = s.queue
       WHERE s.topic = ${topic} AND j.state IN ('created', 'retry', 'active', 'failed')),
      (SELECT min(b.seqs[1])
       FROM pgmesh.subscriptions s JOIN pgmesh.lease_batches b ON b.queue = s.queue
       WHERE s.topic = ${topic}),
      (SELECT min(c.position) + 1 FROM pgmesh.cursors c WHERE c.topic = ${topic})) AS seq`;
  return row?.seq == null ? undefined : String(row.seq);
}

/**
 * Deletes up to `limit` events of the topic published before `cutoff` and older than `before`
 * (the oldest still needed), except those a dead letter points at; returns how many.
 */
export async function deleteExpiredEvents(
  sql: Sql,
  topic: string,
  cutoff: Date,
  before: string | undefined,
  limit: number,
): Promise<number> {
  // The topic's retained_from moves past what was deleted: a seek before it is refused.
  const [row] = await sql`
    WITH deleted AS (
      DELETE FROM pgmesh.events WHERE ctid IN (
        SELECT e.ctid FROM pgmesh.events e
        WHERE e.topic_id = pgmesh.topic_id(${topic}) AND e.published_at < ${cutoff}
          AND (${before ?? null}::bigint IS NULL OR e.seq < ${before ?? null}::bigint)
          AND NOT EXISTS (SELECT 1 FROM pgmesh.dead_letters d WHERE d.event_seq = e.seq)
        LIMIT ${limit})
      RETURNING seq
    ), moved AS (
      UPDATE pgmesh.topics SET retained_from = greatest(retained_from, (SELECT max(seq) + 1 FROM deleted))
      WHERE name = ${topic} AND EXISTS (SELECT 1 FROM deleted)
    )
    SELECT count(*) AS n FROM deleted`;
  return Number(row?.n ?? 0);
}
