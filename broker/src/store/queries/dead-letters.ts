// Named queries on pgmesh.dead_letters' read and operator side (list, redrive, purge).
import type { DeadLetter, DeadLetterReason, DeadLetterSelection } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";
import { topicName, toStoredEvent } from "./events.ts";

type Runner = Sql | TransactionSql;

/** The WHERE clause for open (not redriven) dead letters matching the selection. */
function matching(sql: Runner, s: DeadLetterSelection) {
  return sql`dl.subscription = ${s.subscription} AND dl.redriven_at IS NULL
    ${s.ids ? sql`AND dl.id = ANY(${s.ids}::bigint[])` : sql``}
    ${s.reason ? sql`AND dl.reason = ${s.reason}` : sql``}
    ${s.after ? sql`AND dl.dead_lettered_at >= ${s.after}` : sql``}
    ${s.before ? sql`AND dl.dead_lettered_at < ${s.before}` : sql``}
    ${s.eventType ? sql`AND e.type = ${s.eventType}` : sql``}`;
}

export async function selectDeadLetters(
  sql: Runner,
  selection: DeadLetterSelection,
  afterId: string,
  limit: number,
): Promise<DeadLetter[]> {
  const rows = await sql`
    SELECT dl.id AS dl_id, dl.subscription, dl.attempts, dl.reason, dl.last_error, dl.first_failed_at,
           dl.dead_lettered_at, e.*, ${topicName(sql, "e")}
    FROM pgmesh.dead_letters dl JOIN pgmesh.events e ON e.seq = dl.event_seq
    WHERE ${matching(sql, selection)} AND dl.id > ${afterId}
    ORDER BY dl.id LIMIT ${limit}`;
  return rows.map((r) => ({
    id: String(r.dl_id),
    subscription: r.subscription as string,
    event: toStoredEvent(r),
    attempts: r.attempts as number,
    reason: r.reason as DeadLetterReason,
    lastError: r.last_error as string,
    firstFailedAt: r.first_failed_at as Date,
    deadLetteredAt: r.dead_lettered_at as Date,
  }));
}

/** Marks the selected dead letters redriven and returns their events; the caller queues them. */
export async function claimForRedrive(
  tx: TransactionSql,
  selection: DeadLetterSelection,
): Promise<{ id: string; eventSeq: string; orderingKey: string; parkedJobId: string | null }[]> {
  const rows = await tx`
    UPDATE pgmesh.dead_letters AS target SET redriven_at = now()
    FROM pgmesh.dead_letters dl JOIN pgmesh.events e ON e.seq = dl.event_seq
    WHERE target.id = dl.id AND ${matching(tx, selection)}
      -- Re-checked on the row a concurrent redrive just committed (the join's copy is not), so
      -- of two racing redrives only one claims each dead letter.
      AND target.redriven_at IS NULL
    RETURNING target.id, target.event_seq, e.ordering_key, target.parked_job_id`;
  return rows.map((r) => ({
    id: String(r.id),
    eventSeq: String(r.event_seq),
    orderingKey: r.ordering_key as string,
    parkedJobId: (r.parked_job_id as string | null) ?? null,
  }));
}

export async function recordRedriveJobs(
  tx: TransactionSql,
  items: { id: string; jobId: string }[],
): Promise<void> {
  if (items.length === 0) return;
  await tx`
    UPDATE pgmesh.dead_letters AS dl SET redrive_job_id = x.job_id
    FROM unnest(${items.map((i) => i.id)}::bigint[], ${items.map((i) => i.jobId)}::uuid[]) AS x(id, job_id)
    WHERE dl.id = x.id`;
}

/** Deletes the selected dead letters; returns the parked jobs they held (to release). */
export async function deleteDeadLetters(
  sql: Runner,
  selection: DeadLetterSelection,
): Promise<{ count: number; parkedJobIds: string[] }> {
  const rows = await sql`
    DELETE FROM pgmesh.dead_letters AS target
    USING pgmesh.dead_letters dl JOIN pgmesh.events e ON e.seq = dl.event_seq
    WHERE target.id = dl.id AND ${matching(sql, selection)}
    RETURNING target.id, target.parked_job_id`;
  return {
    count: rows.length,
    parkedJobIds: rows.map((r) => r.parked_job_id as string | null).filter((id): id is string => id !== null),
  };
}

export async function countOpenDeadLetters(sql: Runner, subscription: string): Promise<number> {
  const [row] = await sql`
    SELECT count(*)::bigint AS n FROM pgmesh.dead_letters WHERE subscription = ${subscription} AND redriven_at IS NULL`;
  return Number(row?.n ?? 0);
}

export async function deadLetterIdsOfParkedJobs(sql: Runner, jobIds: string[]): Promise<Map<string, string>> {
  if (jobIds.length === 0) return new Map();
  const rows = await sql`
    SELECT id, parked_job_id FROM pgmesh.dead_letters WHERE parked_job_id = ANY(${jobIds}::uuid[])`;
  return new Map(rows.map((r) => [r.parked_job_id as string, String(r.id)]));
}

/** The parked jobs are gone: their dead letters no longer hold a key. */
export async function detachParkedJobs(tx: TransactionSql, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await tx`UPDATE pgmesh.dead_letters SET parked_job_id = NULL WHERE parked_job_id = ANY(${jobIds}::uuid[])`;
}
