// Named queries on pgmesh.cursors (migration 0040): a subscription's backlog not yet leased is the
// events of its topic after its cursor. A lease reads past the cursor, the broker decides what
// each event becomes (delivery/cursor-routing.ts), and one statement moves the cursor, holds the
// events leased now in one batch (lease-batches.ts) and inserts the pg-boss jobs of the others,
// fenced on the position it read: two brokers leasing for one subscription never
// lease an event twice, and the one that lost the race reads again.
import { randomUUID } from "node:crypto";
import type { Lease, LeaseHolding, StoredEvent } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";
import { jobIdTimePrefix } from "../job-ids.ts";
import { toStoredEvent } from "./events.ts";
import { dropBatches, slotLease } from "./lease-batches.ts";

type Runner = Sql | TransactionSql;

export interface CursorRead {
  /** The cursor: every event up to it has been leased, scheduled or skipped. */
  position: string;
  /** The events after it, in seq order (at most the limit asked). */
  events: StoredEvent[];
}

/** What a lease from the cursor inserts into the subscription's pg-boss queue for one event. */
export interface CursorJob {
  seq: string;
  /** Inserted already leased (active, first attempt), as pg-boss's fetch would leave it. */
  leased: boolean;
  /** When it falls due (a delayed event); now when left out. */
  startAfter?: Date | undefined;
  /** A time-ordered id, for ordered subscriptions: a key's jobs go in seq order. */
  id?: string | undefined;
  /** The ordering key (ordered subscriptions). */
  key?: string | undefined;
}

export async function insertCursor(
  sql: Runner,
  queue: string,
  topic: string,
  position: string,
): Promise<void> {
  await sql`INSERT INTO pgmesh.cursors (queue, topic, topic_id, position)
            VALUES (${queue}, ${topic}, pgmesh.topic_id(${topic}), ${position})`;
}

/**
 * The cursors of these subscriptions, each with up to its `limit` events after it, in one statement;
 * a subscription that has no cursor (deleted) is missing from the map. Subscriptions of one topic
 * mostly read the same events: each event's columns come back once, on its first row, and the
 * subscriptions that read it share one StoredEvent (so the server encodes it once, too).
 */
export async function selectAfterCursors(
  sql: Runner,
  reads: { queue: string; limit: number }[],
): Promise<Map<string, CursorRead>> {
  const rows = await sql`
    SELECT cursor_queue, cursor_position, topic, seq,
           CASE WHEN first THEN id END AS id, CASE WHEN first THEN source END AS source,
           CASE WHEN first THEN type END AS type, CASE WHEN first THEN subject END AS subject,
           CASE WHEN first THEN time END AS time, CASE WHEN first THEN attributes END AS attributes,
           CASE WHEN first THEN ordering_key END AS ordering_key,
           CASE WHEN first THEN data_type_url END AS data_type_url, CASE WHEN first THEN data END AS data,
           CASE WHEN first THEN published_at END AS published_at,
           CASE WHEN first THEN deliver_after END AS deliver_after, first
    FROM (
      -- The row comparison makes Postgres walk the (topic, seq) index from the cursor: written as
      -- topic = x AND seq > y it read the primary key and filtered by topic, 1.6 s behind a million
      -- events of another topic (bench (e) profile) instead of 0.3 ms.
      SELECT c.queue AS cursor_queue, c.position AS cursor_position, c.topic, e.*,
             row_number() OVER (PARTITION BY e.topic_id, e.seq) = 1 AS first
      FROM unnest(${reads.map((r) => r.queue)}::text[], ${reads.map((r) => r.limit)}::int[]) AS r(queue, lim)
      JOIN pgmesh.cursors c ON c.queue = r.queue
      LEFT JOIN LATERAL (
        SELECT * FROM pgmesh.events e
        WHERE (e.topic_id, e.seq) > (c.topic_id, c.position) AND e.topic_id <= c.topic_id
        ORDER BY e.topic_id, e.seq LIMIT r.lim
      ) e ON true
    ) x
    -- The window's order: one sort. Each cursor's rows are still in seq order.
    ORDER BY topic_id, seq`;
  // Each event from the row that carries its columns (a row of a cursor with no events has none).
  const events = new Map<string, StoredEvent>();
  for (const row of rows) {
    // By seq alone: unique across topics (an identity column).
    if (row.first && row.seq !== null) events.set(String(row.seq), toStoredEvent(row));
  }
  const found = new Map<string, CursorRead>();
  for (const row of rows) {
    const queue = row.cursor_queue as string;
    let read = found.get(queue);
    if (!read) {
      read = { position: String(row.cursor_position), events: [] };
      found.set(queue, read);
    }
    if (row.seq === null) continue;
    const event = events.get(String(row.seq));
    if (event) read.events.push(event);
  }
  return found;
}

/**
 * Moves the cursor from `from` to `to` and writes the deliveries, in one statement: the leased
 * ones as one batch (or jobs inserted active, as `holding` says), the others as pg-boss jobs.
 * Nothing happens (undefined) when the cursor is no longer at `from` (another broker leased, or a
 * seek moved it). Returns the leases, by event seq. Jobs are filled as pg-boss 12.38's insert()
 * fills them from the queue's settings, and a leased job as its fetch() leaves it
 * (publish-statement.test.ts compares them with pg-boss's own).
 */
export async function advanceCursor(
  sql: Runner,
  queue: string,
  from: string,
  to: string,
  deliveries: CursorJob[],
  holding: LeaseHolding,
): Promise<Map<string, Lease> | undefined> {
  const batched = holding === "batch" ? deliveries.filter((d) => d.leased).map((d) => d.seq) : [];
  const jobs = holding === "batch" ? deliveries.filter((d) => !d.leased) : deliveries;
  const batchId = randomUUID();
  const input = jobs.map((j) => ({
    s: j.seq,
    a: j.leased,
    t: j.startAfter?.toISOString() ?? null,
    id: j.id ?? null,
    k: j.key ?? null,
  }));
  const rows = await sql`
    WITH moved AS (
      UPDATE pgmesh.cursors SET position = ${to}::bigint
      WHERE queue = ${queue} AND position = ${from}::bigint
      RETURNING 1
    ), batch AS (
      INSERT INTO pgmesh.lease_batches (id, queue, seqs, pending, leased_at, expires_at)
      SELECT ${batchId}::uuid, q.name, ${batched}::bigint[], ${"1".repeat(batched.length)}::varbit, now(),
             now() + q.expire_seconds * interval '1s'
      FROM pgboss.queue q
      WHERE q.name = ${queue} AND ${batched.length} > 0 AND EXISTS (SELECT 1 FROM moved)
      RETURNING 1
    ), jobs AS (
      INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, singleton_key,
        expire_seconds, deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff,
        retry_delay_max, policy, dead_letter, heartbeat_seconds, state, started_on, heartbeat_on)
      SELECT coalesce(d.id, (${jobIdTimePrefix()}::text
               || lpad(to_hex((random() * 4503599627370496)::bigint), 13, '0')
               || lpad(to_hex((random() * 134217728)::bigint), 7, '0'))::uuid),
             q.name, jsonb_build_object('e', d.s::text), 0,
             d.start_after, pgboss.job_now(), d.k, q.expire_seconds, q.deletion_seconds,
             d.start_after + q.retention_seconds * interval '1s', q.retry_limit, q.retry_delay,
             q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds,
             CASE WHEN d.a THEN 'active'::pgboss.job_state ELSE 'created'::pgboss.job_state END,
             CASE WHEN d.a THEN pgboss.job_now() END, CASE WHEN d.a THEN pgboss.job_now() END
      FROM (SELECT x.*, coalesce(x.t, pgboss.job_now()) AS start_after
            FROM jsonb_to_recordset(${sql.json(input)}::jsonb) AS x(s bigint, a boolean, t timestamptz, id uuid, k text)) d
      JOIN pgboss.queue q ON q.name = ${queue}
      WHERE EXISTS (SELECT 1 FROM moved)
      ORDER BY d.s
      RETURNING id, (data ->> 'e') AS seq, state = 'active' AS leased
    )
    SELECT NULL::uuid AS id, NULL::text AS seq, (SELECT count(*) FROM moved) AS moved,
           (SELECT count(*) FROM batch) AS batches
    UNION ALL SELECT id, seq, NULL, NULL FROM jobs WHERE leased`;
  const [head, ...leased] = rows;
  if (Number(head?.moved ?? 0) === 0) return undefined;
  const leases = new Map<string, Lease>(
    leased.map((r) => [String(r.seq), { jobId: String(r.id), retryCount: 0, eventSeq: String(r.seq) }]),
  );
  if (Number(head?.batches ?? 0) > 0) {
    batched.forEach((seq, index) => {
      leases.set(seq, slotLease(batchId, index, batched.length, seq));
    });
  }
  return leases;
}

/** The queues (of these) whose cursor is behind its topic's newest event: an index probe each. */
export async function selectQueuesBehind(sql: Runner, queues: string[]): Promise<string[]> {
  const rows = await sql`
    SELECT c.queue FROM pgmesh.cursors c
    WHERE c.queue = ANY(${queues}::text[])
      AND EXISTS (SELECT 1 FROM pgmesh.events e
                  WHERE (e.topic_id, e.seq) > (c.topic_id, c.position) AND e.topic_id <= c.topic_id)`;
  return rows.map((r) => r.queue as string);
}

/** A cursor's lag: events after it (counted up to `cap`), the oldest one's age, and its position. */
export async function selectCursorLag(
  sql: Runner,
  queue: string,
  cap: number,
): Promise<{ events: number; oldestAgeSeconds: number; position: string }> {
  const [row] = await sql`
    SELECT c.position,
           (SELECT count(*) FROM (SELECT 1 FROM pgmesh.events e
                                  WHERE (e.topic_id, e.seq) > (c.topic_id, c.position) AND e.topic_id <= c.topic_id
                                  LIMIT ${cap}) x) AS lag,
           coalesce(extract(epoch FROM now() - (SELECT e.published_at FROM pgmesh.events e
                              WHERE (e.topic_id, e.seq) > (c.topic_id, c.position) AND e.topic_id <= c.topic_id
                              ORDER BY e.topic_id, e.seq LIMIT 1)), 0)::float8 AS age
    FROM pgmesh.cursors c WHERE c.queue = ${queue}`;
  return {
    events: Number(row?.lag ?? 0),
    oldestAgeSeconds: Math.max(0, Number(row?.age ?? 0)),
    position: String(row?.position ?? "0"),
  };
}

/** The newest seq of a topic (0 when it has none). */
export async function selectTopicHead(sql: Runner, topic: string): Promise<string> {
  const [row] = await sql`
    SELECT coalesce((SELECT seq FROM pgmesh.events WHERE topic_id = pgmesh.topic_id(${topic})
                     ORDER BY seq DESC LIMIT 1), 0) AS seq`;
  return String(row?.seq ?? "0");
}

/** The oldest retained event of a topic, or undefined when it has none. */
export async function selectTopicTail(
  sql: Runner,
  topic: string,
): Promise<{ seq: string; publishedAt: Date } | undefined> {
  const [row] = await sql`
    SELECT seq, published_at FROM pgmesh.events WHERE topic_id = pgmesh.topic_id(${topic}) ORDER BY seq LIMIT 1`;
  return row ? { seq: String(row.seq), publishedAt: row.published_at as Date } : undefined;
}

/**
 * The seq of the first event of the topic published at or after `time`, or undefined when none
 * is. published_at rises with seq within a topic (the publish statement stamps it after taking
 * the topic's lock), so this is a binary search over the (topic, seq) index: about 20 index probes
 * for a million events, instead of a scan.
 */
export async function selectFirstAtOrAfter(
  sql: Runner,
  topic: string,
  time: Date,
): Promise<string | undefined> {
  const [row] = await sql`SELECT pgmesh.first_event_at_or_after(${topic}, ${time}) AS seq`;
  return row?.seq == null ? undefined : String(row.seq);
}

/**
 * Moves the cursor to `position` (every event up to it counts as acked) and drops the queue's
 * deliveries that are pending, retrying, delayed or leased, in jobs or in batches (settling one
 * later answers STALE), and their failure history. Parked keys and dead letters stay. Returns how many were dropped.
 */
export async function seekCursor(tx: TransactionSql, queue: string, position: string): Promise<number> {
  await tx`UPDATE pgmesh.cursors SET position = ${position}::bigint
           WHERE queue = ${queue}`;
  const dropped = await tx`
    DELETE FROM pgboss.job WHERE name = ${queue} AND state IN ('created', 'retry', 'active')
    RETURNING id`;
  const ids = dropped.map((r) => r.id as string);
  if (ids.length > 0) await tx`DELETE FROM pgmesh.delivery_failures WHERE job_id = ANY(${ids}::uuid[])`;
  return ids.length + (await dropBatches(tx, queue));
}
