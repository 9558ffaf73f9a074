// Named queries on pgmesh.lease_batches (migration 0041): the events one lease took from a
// subscription's cursor, held by one row with a pending bit per event (JetStream's ack floor and
// pending set, per batch). A slot leaves its batch through `takeSlots` only, whatever settles it;
// what it becomes then (nothing for an ack, a pg-boss job for a retry or an extension, a dead
// letter) is written by the caller in the same transaction.
import { randomUUID } from "node:crypto";
import type { Lease } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";

type Runner = Sql | TransactionSql;

/** The delivery id of a batch's slot: unique per lease, like a job id, and never a uuid. */
export const slotJobId = (batch: string, index: number) => `${batch}/${index}`;

export function slotLease(batch: string, index: number, size: number, eventSeq: string): Lease {
  return { jobId: slotJobId(batch, index), retryCount: 0, eventSeq, slot: { batch, index, size } };
}

/**
 * Takes these slots out of their batches, fenced: a slot already settled, or whose batch lapsed
 * (swept) or was dropped by a seek, is not taken. Returns the job ids of the leases taken.
 */
export async function takeSlots(sql: Runner, leases: Lease[]): Promise<Set<string>> {
  const masks = new Map<string, { size: number; bits: Uint8Array }>();
  for (const { slot, retryCount } of leases) {
    // A slot only ever holds a first attempt: a lease naming another is not one of its batch's.
    if (!slot || retryCount !== 0) continue;
    const mask = masks.get(slot.batch) ?? { size: slot.size, bits: new Uint8Array(slot.size) };
    if (slot.index >= 0 && slot.index < mask.size) mask.bits[slot.index] = 1;
    masks.set(slot.batch, mask);
  }
  if (masks.size === 0) return new Set();
  // In id order: two takers lock batches in the same order and cannot deadlock.
  const batches = [...masks.keys()].sort();
  const rows = await sql`
    SELECT batch, taken::text AS taken
    FROM pgmesh.take_lease_slots(${batches}::uuid[],
                                 ${batches.map((b) => (masks.get(b) as { bits: Uint8Array }).bits.join(""))}::varbit[])`;
  const taken = new Set<string>();
  for (const row of rows) {
    const bits = row.taken as string;
    for (let i = 0; i < bits.length; i++) if (bits[i] === "1") taken.add(slotJobId(row.batch as string, i));
  }
  return taken;
}

/** Up to `limit` slots of batches whose lease ran out, on any broker, oldest batches first. */
export async function selectLapsedSlots(
  sql: Runner,
  limit: number,
): Promise<{ subscription: string; lease: Lease }[]> {
  const rows = await sql`
    SELECT s.name AS subscription, b.id, b.pending::text AS pending, b.seqs::text[] AS seqs
    FROM pgmesh.lease_batches b JOIN pgmesh.subscriptions s ON s.queue = b.queue
    WHERE b.expires_at < now()
    ORDER BY b.expires_at
    LIMIT ${limit}`;
  const lapsed: { subscription: string; lease: Lease }[] = [];
  for (const row of rows) {
    const pending = row.pending as string;
    const seqs = row.seqs as string[];
    for (let i = 0; i < pending.length && lapsed.length < limit; i++) {
      if (pending[i] !== "1") continue;
      lapsed.push({
        subscription: row.subscription as string,
        lease: slotLease(row.id as string, i, pending.length, seqs[i] as string),
      });
    }
  }
  return lapsed;
}

/** What a slot taken from its batch becomes in the subscription's pg-boss queue. */
export type SlotJob =
  /** Its first attempt failed: waits `delaySeconds`, then a fetch takes it as attempt 2. */
  | { lease: Lease; retryAfterSeconds: number }
  /** Still leased by its stream, now running out `leaseSeconds` from now (an extension). */
  | { lease: Lease; leaseSeconds: number };

/**
 * Inserts a pg-boss job for each slot (taken from its batch by the caller, in this transaction),
 * filled as pg-boss 12.38 leaves a job after a first attempt: `started_on` set and `retry_count` 0,
 * so its next fetch counts attempt 2 (plans.js fetchNextJob). Returns the new job ids, by slot.
 */
export async function insertSlotJobs(
  tx: TransactionSql,
  queue: string,
  jobs: SlotJob[],
): Promise<Map<string, string>> {
  if (jobs.length === 0) return new Map();
  const ids = new Map(jobs.map((j) => [j.lease.jobId, randomUUID()]));
  const input = jobs.map((j) => ({
    id: ids.get(j.lease.jobId),
    s: j.lease.eventSeq,
    r: "retryAfterSeconds" in j ? j.retryAfterSeconds : null,
    l: "leaseSeconds" in j ? j.leaseSeconds : null,
  }));
  await tx`
    INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, expire_seconds,
      deletion_seconds, keep_until, retry_limit, retry_delay, retry_backoff, retry_delay_max, policy,
      dead_letter, heartbeat_seconds, state, retry_count, started_on, heartbeat_on)
    SELECT d.id, q.name, jsonb_build_object('e', d.s::text), 0,
           now() + coalesce(d.r, 0) * interval '1s', now(), coalesce(d.l, q.expire_seconds),
           q.deletion_seconds, now() + q.retention_seconds * interval '1s', q.retry_limit, q.retry_delay,
           q.retry_backoff, q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds,
           CASE WHEN d.l IS NULL THEN 'retry'::pgboss.job_state ELSE 'active'::pgboss.job_state END,
           0, now(), now()
    FROM jsonb_to_recordset(${tx.json(input)}::jsonb) AS d(id uuid, s bigint, r int, l int)
    JOIN pgboss.queue q ON q.name = ${queue}`;
  return ids;
}

/** Drops a queue's batches (a seek); returns how many leased events they held. */
export async function dropBatches(tx: TransactionSql, queue: string): Promise<number> {
  const [row] = await tx`
    WITH gone AS (DELETE FROM pgmesh.lease_batches WHERE queue = ${queue} RETURNING pending)
    SELECT coalesce(sum(bit_count(pending)), 0)::bigint AS n FROM gone`;
  return Number(row?.n ?? 0);
}

/** Events leased in batches of a queue and not settled, and when the oldest batch was leased. */
export async function batchCounts(
  sql: Runner,
  queue: string,
): Promise<{ inFlight: number; oldestAgeSeconds: number }> {
  const [row] = await sql`
    SELECT coalesce(sum(bit_count(pending)), 0)::bigint AS n,
           coalesce(extract(epoch FROM now() - min(leased_at)), 0)::float8 AS oldest
    FROM pgmesh.lease_batches WHERE queue = ${queue}`;
  return { inFlight: Number(row?.n ?? 0), oldestAgeSeconds: Number(row?.oldest ?? 0) };
}
