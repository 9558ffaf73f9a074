// Named queries on pgmesh.dead_letters' read and operator side (list, redrive, purge).
import type { DeadLetter, DeadLetterReason, DeadLetterSelection } from "../../delivery/model.ts";
import type { Sql, TransactionSql } from "../database.ts";
import { toStoredEvent } from "./events.ts";

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
           dl.dead_lettered_at, e.*
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
): Promise<{ id: string; eventSeq: string }[]> {
  const rows = await tx`
    UPDATE pgmesh.dead_letters AS target SET redriven_at = now()
    FROM pgmesh.dead_letters dl JOIN pgmesh.events e ON e.seq = dl.event_seq
    WHERE target.id = dl.id AND ${matching(tx, selection)}
    RETURNING target.id, target.event_seq`;
  return rows.map((r) => ({ id: String(r.id), eventSeq: String(r.event_seq) }));
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

export async function deleteDeadLetters(sql: Runner, selection: DeadLetterSelection): Promise<number> {
  const rows = await sql`
    DELETE FROM pgmesh.dead_letters AS target
    USING pgmesh.dead_letters dl JOIN pgmesh.events e ON e.seq = dl.event_seq
    WHERE target.id = dl.id AND ${matching(sql, selection)}
    RETURNING target.id`;
  return rows.length;
}

export async function countOpenDeadLetters(sql: Runner, subscription: string): Promise<number> {
  const [row] = await sql`
    SELECT count(*)::bigint AS n FROM pgmesh.dead_letters WHERE subscription = ${subscription} AND redriven_at IS NULL`;
  return Number(row?.n ?? 0);
}
