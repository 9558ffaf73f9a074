// Statements on pg-boss's job table (schema pgboss; pg-boss pinned to 12.38). pg-boss's API has
// no per-delivery retry delay, no lease extension and no query for lapsed leases across queues;
// these statements add them on the job's documented columns (state, retry_count, retry_delay,
// started_on, expire_seconds) and always fence on (id, retry_count) like pg-boss's own settles.
import type { Lease } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

type Runner = Sql | TransactionSql;

/** pg-boss computes a retry's start_after as now() + retry_delay seconds (without backoff mode). */
export async function setRetryDelays(
  tx: TransactionSql,
  queue: string,
  items: { lease: Lease; delaySeconds: number }[],
): Promise<void> {
  if (items.length === 0) return;
  await tx`
    UPDATE pgboss.job AS j SET retry_delay = x.delay
    FROM unnest(${items.map((i) => i.lease.jobId)}::uuid[], ${items.map((i) => i.lease.retryCount)}::int[],
                ${items.map((i) => i.delaySeconds)}::int[]) AS x(id, retry_count, delay)
    WHERE j.name = ${queue} AND j.id = x.id AND j.retry_count = x.retry_count AND j.state = 'active'`;
}

/** Pushes each lease's expiry to `seconds` from now; returns the ids extended. */
export async function extendLeases(
  sql: Runner,
  queue: string,
  leases: Lease[],
  seconds: number,
): Promise<string[]> {
  const rows = await sql`
    UPDATE pgboss.job AS j
    SET expire_seconds = ceil(extract(epoch FROM now() - j.started_on))::int + ${seconds}
    FROM unnest(${leases.map((l) => l.jobId)}::uuid[], ${leases.map((l) => l.retryCount)}::int[]) AS x(id, retry_count)
    WHERE j.name = ${queue} AND j.id = x.id AND j.retry_count = x.retry_count AND j.state = 'active'
    RETURNING j.id`;
  return rows.map((r) => r.id as string);
}

/**
 * Which of these queues hold a job that pg-boss's fetch would take now: created or waiting out a
 * retry, not blocked, due. Per queue, the first row of pg-boss's fetch order on its job_i11 (name,
 * priority DESC, created_on, start_after): an index-only probe that stops at the first due job,
 * 0.4 ms for 100 queues (EXPLAIN ANALYZE, 200,000 pending jobs). A plain EXISTS was planned as a
 * scan of the whole job table.
 */
export async function selectQueuesWithDueJobs(sql: Runner, queues: string[]): Promise<string[]> {
  const rows = await sql`
    SELECT q.name FROM unnest(${queues}::text[]) AS q(name)
    CROSS JOIN LATERAL (
      SELECT 1 FROM pgboss.job j
      WHERE j.name = q.name AND j.state < 'active' AND NOT j.blocked AND j.start_after <= now()
      ORDER BY j.priority DESC, j.created_on
      LIMIT 1) AS due`;
  return rows.map((r) => r.name as string);
}

/** Active deliveries of pgmesh subscriptions whose lease ran out. */
export async function selectLapsed(
  sql: Runner,
  limit: number,
): Promise<{ subscription: string; lease: Lease }[]> {
  const rows = await sql`
    SELECT s.name AS subscription, j.id, j.retry_count, j.data ->> 'e' AS e
    FROM pgmesh.subscriptions s
    JOIN pgboss.job j ON j.name = s.queue
    WHERE j.state = 'active' AND j.started_on + j.expire_seconds * interval '1 second' < now()
    LIMIT ${limit}`;
  return rows.map((r) => ({
    subscription: r.subscription as string,
    lease: { jobId: r.id as string, retryCount: r.retry_count as number, eventSeq: r.e as string },
  }));
}

/**
 * Applies a changed lease length and acked retention to deliveries already queued (pg-boss copies
 * both onto each job when it is queued). A lease already granted (or extended) keeps its length:
 * the consumer holding it was promised that deadline.
 */
export async function applyPolicyToQueuedJobs(
  sql: Runner,
  queue: string,
  leaseSeconds: number,
  deletionSeconds: number,
): Promise<void> {
  await sql`UPDATE pgboss.job
    SET expire_seconds = CASE WHEN state = 'active' THEN expire_seconds ELSE ${leaseSeconds} END,
        deletion_seconds = ${deletionSeconds}
    WHERE name = ${queue} AND state <= 'active'`;
}

/**
 * Dead-letters keyed deliveries of an ordered subscription by leaving them in pg-boss as failed
 * jobs that are never deleted (deletion_seconds 0): pg-boss's key_strict_fifo policy then holds
 * back the key's later events. Unkeyed deliveries (key "~<seq>") are not parked.
 */
export async function parkJobs(
  tx: TransactionSql,
  queue: string,
  leases: Lease[],
): Promise<{ id: string; key: string }[]> {
  if (leases.length === 0) return [];
  const rows = await tx`
    UPDATE pgboss.job AS j SET state = 'failed', completed_on = now(), deletion_seconds = 0
    FROM unnest(${leases.map((l) => l.jobId)}::uuid[], ${leases.map((l) => l.retryCount)}::int[]) AS x(id, retry_count)
    WHERE j.name = ${queue} AND j.id = x.id AND j.retry_count = x.retry_count AND j.state = 'active'
      AND j.singleton_key NOT LIKE '~%'
    RETURNING j.id, j.singleton_key`;
  return rows.map((r) => ({ id: r.id as string, key: r.singleton_key as string }));
}

/** Puts parked jobs back at the head of their key as fresh first attempts (a redrive). */
export async function unparkAsNew(
  tx: TransactionSql,
  queue: string,
  jobIds: string[],
  deletionSeconds: number,
) {
  if (jobIds.length === 0) return [];
  const rows = await tx`
    UPDATE pgboss.job SET state = 'created', retry_count = 0, started_on = NULL, completed_on = NULL,
      start_after = now(), deletion_seconds = ${deletionSeconds}, output = NULL
    WHERE name = ${queue} AND id = ANY(${jobIds}::uuid[]) AND state = 'failed'
    RETURNING id`;
  return rows.map((r) => r.id as string);
}

/** Deletes the parked jobs of these keys (or these job ids): the keys' later events flow again. */
export async function releaseParked(
  tx: TransactionSql,
  queue: string,
  by: { keys?: string[]; jobIds?: string[] },
): Promise<string[]> {
  const rows = await tx`
    DELETE FROM pgboss.job WHERE name = ${queue} AND state = 'failed'
      AND ${by.keys ? tx`singleton_key = ANY(${by.keys}::text[])` : tx`id = ANY(${by.jobIds ?? []}::uuid[])`}
    RETURNING id`;
  return rows.map((r) => r.id as string);
}

export async function selectParked(
  sql: Runner,
  queue: string,
): Promise<{ key: string; jobId: string; waiting: number }[]> {
  const rows = await sql`
    SELECT p.singleton_key AS key, p.id,
           (SELECT count(*) FROM pgboss.job w
             WHERE w.name = ${queue} AND w.singleton_key = p.singleton_key AND w.state < 'active')::bigint AS waiting
    FROM pgboss.job p WHERE p.name = ${queue} AND p.state = 'failed'
    ORDER BY p.singleton_key`;
  return rows.map((r) => ({ key: r.key as string, jobId: r.id as string, waiting: Number(r.waiting) }));
}

export async function queueCounts(
  sql: Runner,
  queue: string,
): Promise<{ backlog: number; inFlight: number; oldestAgeSeconds: number; parked: number }> {
  const [row] = await sql`
    SELECT count(*) FILTER (WHERE state < 'active')::bigint AS backlog,
           count(*) FILTER (WHERE state = 'failed')::bigint AS parked,
           count(*) FILTER (WHERE state = 'active')::bigint AS in_flight,
           coalesce(extract(epoch FROM now() - min(created_on) FILTER (WHERE state <= 'active')), 0)::float8 AS oldest
    FROM pgboss.job WHERE name = ${queue}`;
  return {
    backlog: Number(row?.backlog ?? 0),
    inFlight: Number(row?.in_flight ?? 0),
    parked: Number(row?.parked ?? 0),
    oldestAgeSeconds: Number(row?.oldest ?? 0),
  };
}
